# Image-text retrieval on the COCO Karpathy test split: the captioning data (coco_caption.py,
# same layout; the _gt.json is not needed), scored by recall@1/5/10 in both directions over
# the 5,000 images and their 25,010 captions.
_base_ = './coco_caption.py'
val_evaluator = dict(_delete_=True, type='RetrievalRecallMetric', topk=(1, 5, 10))
test_evaluator = val_evaluator
