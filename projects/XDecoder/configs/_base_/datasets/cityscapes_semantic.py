# Cityscapes val, 19 classes, with mmseg's CityscapesDataset (its names are the official
# X-Decoder ones; README "Datasets": Cityscapes). mmsegmentation's layout (its
# tools/dataset_converters/cityscapes.py writes the *_labelTrainIds.png):
#   data/cityscapes/leftImg8bit/val/<city>/*_leftImg8bit.png
#   data/cityscapes/gtFine/val/<city>/*_gtFine_labelTrainIds.png   (255 = ignored)
_base_ = './mmseg_semantic.py'
readme_section = 'Cityscapes'  # README.md, "Datasets": download and layout
# The official Cityscapes test scale: short side 1024, long side <= 2048.
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=1024, max_size=2048, backend='pillow',
         interpolation='bilinear'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs')
]
val_dataloader = dict(
    dataset=dict(
        type='mmseg.CityscapesDataset',
        data_root='data/cityscapes/',
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
