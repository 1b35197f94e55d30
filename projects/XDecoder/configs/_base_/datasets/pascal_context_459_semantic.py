# PASCAL Context, all 459 classes (the dataset's labels.txt names; README "Datasets": PASCAL
# Context). VOC2010 in mmsegmentation's layout plus 16-bit label maps made from the full
# annotations (trainval.tar.gz) by
#   python tools/dataset_converters/pascal_context_459.py data/VOCdevkit/VOC2010 trainval/
#   data/VOCdevkit/VOC2010/JPEGImages/*.jpg
#   data/VOCdevkit/VOC2010/SegmentationClassContext459/*.tif   (16-bit, 65535 = unlabelled)
#   data/VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt
# X-Decoder publishes no PASCAL Context evaluation: its ADE20K test scale is used.
_base_ = './mmseg_semantic_16bit.py'
readme_section = 'PASCAL Context'  # README.md, "Datasets": download and layout
val_dataloader = dict(
    dataset=dict(
        type='PascalContext459Dataset',
        data_root='data/VOCdevkit/VOC2010/',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext459'),
        ann_file='ImageSets/SegmentationContext/val.txt'))
test_dataloader = val_dataloader
