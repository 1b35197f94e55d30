# RefCOCO+ (UNC split): data/coco/refcoco+/instances.json, data/coco/refcoco+/refs(unc).p,
# images in data/coco/train2014/.
_base_ = './refcoco.py'
val_dataloader = dict(
    dataset=dict(ann_file='refcoco+/instances.json', split_file='refcoco+/refs(unc).p',
                 split='val'))  # or 'testA', 'testB'
test_dataloader = val_dataloader
