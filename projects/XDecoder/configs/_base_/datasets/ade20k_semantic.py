# ADE20K-150 semantic segmentation, laid out as mmsegmentation's docs say:
#   data/ade/ADEChallengeData2016/images/validation/*.jpg
#   data/ade/ADEChallengeData2016/annotations/validation/*.png
# Resize as the official evaluation does: short side 640, long side at most 2560, PIL bilinear.
dataset_type = 'ADE20KSegDataset'
data_root = 'data/ade/ADEChallengeData2016/'

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True,
         reduce_zero_label=True),
    dict(type='PackDetInputs',
         meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]

val_dataloader = dict(
    # One image per process: padding is not masked in the model, so batching changes results.
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
