# Semantic benchmarks with more than 255 classes (ADE20K-full, PASCAL Context 459): 16-bit label
# maps, 65535 = unlabelled, read by LoadSegAnnotations16 (mmseg's loader casts to uint8).
_base_ = './mmseg_semantic.py'
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadSegAnnotations16'),
    dict(type='mmseg.PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ignore_index=65535)
test_evaluator = val_evaluator
