"""Imported only by the training processes of test_train_ddp.py (``custom_imports``), never by
pytest itself: it changes process-wide settings.

* ``torch.set_default_dtype(torch.float64)`` before the model is built: the whole model trains in
  float64, where equal algorithms agree to rounding (in float32, attention masks thresholded at
  0 can flip between a batch of two and two batches of one, and the flip cascades);
* the losses' random points become a fixed grid (the same for every image and process), so that
  two processes and one process sample the same points;
* ``GradientDumpHook`` saves, at the first optimizer step, the (DDP-averaged) gradients of the
  parameters whose names contain one of :data:`KEYS`.
"""
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from projects.XDecoder.xdecoder import segmentation_loss

torch.set_default_dtype(torch.float64)

# A parameter of each part, and those only one loss reaches.
KEYS = ('backbone.layers.0.blocks.0.modulation.f.weight', 'pixel_decoder.mask_features',
        'decoder.class_embed', 'decoder.caping_embed', 'decoder.pos_embed_caping',
        'decoder.query_feat', 'decoder.transformer_ffn_layers.8.linear2.weight',
        'backbone_proj', 'decoder.mask_embed.layers.2.weight')


def _grid(num_points: int, device) -> torch.Tensor:
    """``[num_points, 2]`` points in (0, 1), a deterministic low-discrepancy sequence."""
    i = torch.arange(num_points, dtype=torch.float64, device=device) + 0.5
    return torch.stack([(i * 0.6180339887498949) % 1.0, i / num_points], -1)


def _grid_rand(*shape, device=None, **kwargs):
    return _grid(shape[1], device)[None].expand(shape[0], -1, -1).clone()


def _grid_uncertain(mask_logits, uncertainty_func, num_points, *args):
    return _grid(num_points, mask_logits.device)[None].expand(len(mask_logits), -1, -1).clone()


class _TorchWithGridRand:
    """``torch`` for segmentation_loss, with ``rand`` giving the grid."""
    rand = staticmethod(_grid_rand)

    def __getattr__(self, name):
        return getattr(torch, name)


segmentation_loss.torch = _TorchWithGridRand()
segmentation_loss.get_uncertain_point_coords_with_randomness = _grid_uncertain


@HOOKS.register_module()
class GradientDumpHook(Hook):

    def __init__(self, path: str):
        self.path = path

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        step = wrapper.step

        def dump_then_step(*args, **kwargs):
            if runner.rank == 0 and runner.iter == 0:
                model = runner.model.module if hasattr(runner.model, 'module') else runner.model
                torch.save({n: p.grad.detach().clone() for n, p in model.named_parameters()
                            if p.grad is not None and any(k in n for k in KEYS)},
                           self.path)
            return step(*args, **kwargs)

        wrapper.step = dump_then_step
