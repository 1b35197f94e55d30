# RefCOCOg (UMD split) referring-segmentation fine-tuning, mmdetection's layout:
#   data/coco/train2014/COCO_train2014_*.jpg
#   data/coco/refcocog/instances.json  data/coco/refcocog/refs(umd).p
# Each sample: metainfo `text` = every sentence of every referred object of the image, and
# gt_instances.masks = one mask per sentence, in the order of `text`.
refcocog_data_root = 'data/coco/'

refcocog_train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_mask=True),
    # The evaluation's scale (short side 512, long side at most 1024). No flip: expressions say
    # "left" and "right". No crop: mmdet's crop drops masks only together with boxes, and a
    # dropped mask would misalign the masks with `text`.
    dict(type='ResizeShortestEdge', scale=512, max_size=1024, backend='pillow',
         interpolation='bilinear'),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]

train_dataloader = dict(
    batch_size=1,  # all phrases of one image go through together
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='RefCocoDataset',
        data_root=refcocog_data_root,
        data_prefix=dict(img_path='train2014/'),
        ann_file='refcocog/instances.json',
        split_file='refcocog/refs(umd).p',
        split='train',
        # Every sentence, each with its object's mask ('random' would pick one sentence once,
        # when the dataset is built, not per epoch).
        text_mode='original',
        pipeline=refcocog_train_pipeline))
