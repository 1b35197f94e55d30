# The evaluation loader every dataset config shares; each one adds its `dataset`.
# One image per process: padding is not masked in the model, so batching changes results.
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
