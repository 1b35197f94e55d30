# What the semantic benchmarks on mmsegmentation's dataset classes share: mmseg's samples
# (mmseg.LoadAnnotations + mmseg.PackSegInputs -> SegDataSample with gt_sem_seg) and mmseg's
# IoUMetric (aAcc / mIoU / mAcc and the per-class IoU / Acc table). mmseg's samples carry no
# class names: DatasetVocabularyHook makes the dataset's classes (after a metainfo.classes
# subset) the model's vocabulary. Each dataset base adds its dataset (and its test scale where
# it is not the official ADE20K one below).
_base_ = './eval_loader.py'
# Short side 640, long side <= 2560, PIL bilinear: the official ADE20K evaluation.
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560, backend='pillow',
         interpolation='bilinear'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
custom_hooks = [dict(type='DatasetVocabularyHook')]
val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
