# ADE20K-full, 847 classes (the official X-Decoder names; README "Datasets": ADE20K-full). The
# folders are made from the ADE20K_2021_17_01 download by
#   python tools/dataset_converters/ade20k_full.py data/ADE20K_2021_17_01
#   data/ADE20K_2021_17_01/images_detectron2/validation/*.jpg
#   data/ADE20K_2021_17_01/annotations_detectron2/validation/*.tif   (16-bit, 65535 = unlabelled)
# Test scale of the official evaluation (its ADE20K setting): short side 640, long side <= 2560.
_base_ = './mmseg_semantic_16bit.py'
readme_section = 'ADE20K-full'  # README.md, "Datasets": download and layout
val_dataloader = dict(
    dataset=dict(
        type='ADE20KFullDataset',
        data_root='data/ADE20K_2021_17_01/',
        data_prefix=dict(img_path='images_detectron2/validation',
                         seg_map_path='annotations_detectron2/validation')))
test_dataloader = val_dataloader
