# Fine-tune X-Decoder focal-T for semantic segmentation on your own data with your own class
# names (README.md, "Fine-tune on your own data"): images and label PNGs (pixel value = index
# in `classes`, 255 = ignore) in mmsegmentation's folder layout:
#   data/my_dataset/images/{training,validation}/*.jpg
#   data/my_dataset/annotations/{training,validation}/*.png   (same file stems)
#   ./tools/dist_train.sh projects/XDecoder/configs/xdecoder-tiny_finetune_custom-semantic.py 8
# The recipe is the ADE20K fine-tuning one (xdecoder-tiny_finetune_semseg_ade20k.py); only the
# data differ. mmdet's ADE20KSegDataset is its folder-of-images-and-PNGs dataset that puts the
# class names into each sample's 'text'; nothing ADE-specific is left once `classes` replace its
# names.
_base_ = './xdecoder-tiny_finetune_semseg_ade20k.py'
readme_section = 'Your own data'  # README.md, "Datasets"
classes = ('road', 'building', 'sky')  # <- your class names, in label order
data_root = 'data/my_dataset/'

# Label 0 is the first class here (ADE20K's 0 is 'other', hence its reduce_zero_label).
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True,
         reduce_zero_label=False),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), crop_type='absolute', allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs',
         meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'text'))
]
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=512, max_size=2048, backend='pillow',
         interpolation='bilinear'),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True,
         reduce_zero_label=False),
    dict(type='PackDetInputs',
         meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text'))
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), use_label_map=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), pipeline=test_pipeline))
test_dataloader = val_dataloader
