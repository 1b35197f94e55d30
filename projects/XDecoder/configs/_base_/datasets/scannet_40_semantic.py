# ScanNet 25k-frame val with the 40 NYU40 classes (official X-Decoder names): the same folders as
# ScanNet-20, label maps from label41/.
_base_ = './scannet_20_semantic.py'
val_dataloader = dict(dataset=dict(type='ScanNet40SegDataset'))
test_dataloader = val_dataloader
