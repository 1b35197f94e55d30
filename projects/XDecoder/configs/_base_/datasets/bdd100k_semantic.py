# BDD100K (10k) val, 19 classes, with mmseg's BDD100KDataset (its names are the official
# X-Decoder ones; README "Datasets": BDD100K). mmsegmentation's layout:
#   data/bdd100k/images/10k/val/*.jpg
#   data/bdd100k/labels/sem_seg/masks/val/*.png   (255 = ignored)
_base_ = './mmseg_semantic.py'
readme_section = 'BDD100K'  # README.md, "Datasets": download and layout
# The official BDD test scale: short side 800, long side <= 1333.
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow', backend_args=None),
    dict(type='ResizeShortestEdge', scale=800, max_size=1333, backend='pillow',
         interpolation='bilinear'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs')
]
val_dataloader = dict(
    dataset=dict(
        type='mmseg.BDD100KDataset',
        data_root='data/bdd100k/',
        data_prefix=dict(img_path='images/10k/val', seg_map_path='labels/sem_seg/masks/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
