# PASCAL Context 59 with mmseg's PascalContextDataset59 and its class names (X-Decoder has no
# official PASCAL Context vocabulary; README "Datasets": PASCAL Context). mmsegmentation's layout
# (its tools/dataset_converters/pascal_context.py writes the labels and the split):
#   data/VOCdevkit/VOC2010/JPEGImages/*.jpg
#   data/VOCdevkit/VOC2010/SegmentationClassContext/*.png   (0 = background, ignored)
#   data/VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt
# X-Decoder publishes no PASCAL Context evaluation: its ADE20K test scale is used.
_base_ = './mmseg_semantic.py'
readme_section = 'PASCAL Context'  # README.md, "Datasets": download and layout
val_dataloader = dict(
    dataset=dict(
        type='mmseg.PascalContextDataset59',
        data_root='data/VOCdevkit/VOC2010/',
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt'))
test_dataloader = val_dataloader
