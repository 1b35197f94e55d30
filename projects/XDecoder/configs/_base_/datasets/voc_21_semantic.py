# PASCAL VOC 2012 val, 21 classes (background included) with mmseg's PascalVOCDataset and its
# class names (README "Datasets": PASCAL VOC). mmsegmentation's layout:
#   data/VOCdevkit/VOC2012/JPEGImages/*.jpg
#   data/VOCdevkit/VOC2012/SegmentationClass/*.png   (0 = background, 255 = boundary, ignored)
#   data/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt
# 'background' is a class here: the model scores it with its own background embedding
# (model.test_cfg.repeated_names). X-Decoder publishes no VOC evaluation: its ADE20K test scale.
_base_ = './mmseg_semantic.py'
readme_section = 'PASCAL VOC'  # README.md, "Datasets": download and layout
val_dataloader = dict(
    dataset=dict(
        type='mmseg.PascalVOCDataset',
        data_root='data/VOCdevkit/VOC2012/',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt'))
test_dataloader = val_dataloader
