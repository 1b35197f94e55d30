# RefCOCOg, UMD split (the official X-Decoder evaluation, refcocog_val_umd):
# data/coco/refcocog/instances.json, data/coco/refcocog/refs(umd).p, images in
# data/coco/train2014/.
_base_ = './refcoco.py'
val_dataloader = dict(
    dataset=dict(ann_file='refcocog/instances.json', split_file='refcocog/refs(umd).p',
                 split='val'))  # or 'test'
test_dataloader = val_dataloader
