# COCO-Stuff 164k val2017, 171 classes, with mmseg's COCOStuffDataset and its class names
# (X-Decoder has no official COCO-Stuff vocabulary; README "Datasets": COCO-Stuff).
# mmsegmentation's layout (its tools/dataset_converters/coco_stuff164k.py writes the labels):
#   data/coco_stuff164k/images/val2017/*.jpg
#   data/coco_stuff164k/annotations/val2017/*_labelTrainIds.png   (255 = ignored)
# Test scale of the official COCO evaluation: short side 800, long side <= 1333, as BDD100K's.
_base_ = './bdd100k_semantic.py'
readme_section = 'COCO-Stuff'  # README.md, "Datasets": download and layout
val_dataloader = dict(
    dataset=dict(
        type='mmseg.COCOStuffDataset',
        data_root='data/coco_stuff164k/',
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')))
test_dataloader = val_dataloader
