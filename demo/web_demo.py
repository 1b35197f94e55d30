"""A web page for every X-Decoder task (Gradio), on :class:`XDecoderInferencer`.

    python demo/web_demo.py CONFIG --weights CKPT [--device cpu|cuda] [--port 7860]
        [--host 127.0.0.1] [--scale N] [--out-dir DIR] [--share off|on]

then open http://127.0.0.1:7860. One page, one task selector: semantic / instance / panoptic
segmentation with a vocabulary (it starts with the config dataset's classes), referring
segmentation with phrases, captioning, referring captioning (one phrase) and retrieval (phrases
over several uploaded images). The page shows mmdet's drawing, a legend (colour, name, area or
score), the caption or the retrieval probabilities, and offers the saved predictions (the folder
layout of ``XDecoderInferencer.save``) as a zip.

* The model is built once per process and shared by all requests; class embeddings of each
  vocabulary are computed once and then served from the text encoder's cache (the first run with
  the 150 ADE20K classes takes a while on a CPU, later ones do not).
* Concurrency: Gradio's queue runs one prediction at a time (``default_concurrency_limit=1``);
  other requests wait and see their place in the queue. A lock around the shared inferencer also
  serialises calls that reach :meth:`WebDemo.predict` another way. Each request writes into a
  folder of its own under ``--out-dir`` (the last ``--keep`` results are kept).
* Bad input (no image, an empty or duplicate vocabulary, an unreadable file, a phrase for
  captioning, ...) gets a message in the page's status box; an unexpected error is logged with
  its traceback on the server and the page shows one line. The app keeps serving.
* Offline: Gradio's analytics, Hugging Face telemetry, the run history and the share tunnel are
  off (``--share on`` asks Gradio for a public link, which needs the internet); the page's fonts
  and scripts come from the local Gradio package.
"""
import os

# Before gradio is imported: it reads these at import time.
os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import argparse  # noqa: E402
import html  # noqa: E402
import logging  # noqa: E402
import os.path as osp  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from typing import List, Optional  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from projects.XDecoder.xdecoder.inferencer import XDecoderInferencer  # noqa: E402
from projects.XDecoder.xdecoder.tasks import TASKS  # noqa: E402

logger = logging.getLogger('xdecoder.web_demo')

# (label shown, task name of the inferencer)
TASK_CHOICES = [
    ('Semantic segmentation', 'semantic'),
    ('Instance segmentation', 'instance'),
    ('Panoptic segmentation', 'panoptic'),
    ('Referring segmentation', 'referring'),
    ('Captioning', 'caption'),
    ('Referring captioning', 'ref-caption'),
    ('Retrieval', 'retrieval'),
]
TASK_NAMES = dict((task, label) for label, task in TASK_CHOICES)
# What each task reads comes from the task table: class names, phrases, or no text.
SEGMENTATION = tuple(name for name, spec in TASKS.items() if spec.texts == 'classes')
PHRASE_TASKS = tuple(name for name, spec in TASKS.items() if spec.texts not in (None, 'classes'))
PRED_SCORE_THR = 0.3  # instances drawn and listed (as demo/image_demo.py)
MIN_SCALE, MAX_SCALE = 32, 2048


class InputError(ValueError):
    """Something in the page's input that the user can fix; shown as it is."""


def split_texts(text: Optional[str]) -> List[str]:
    """Names or phrases typed in a box: one per line, or separated by '.'."""
    return [t.strip() for line in (text or '').splitlines() for t in line.split('.')
            if t.strip()]


def _path(payload) -> Optional[str]:
    """A file path from what Gradio sends for an Image/File input (not preprocessed)."""
    if payload is None:
        return None
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        return payload.get('path')
    return getattr(payload, 'path', None)


def _hex(color) -> str:
    return '#%02x%02x%02x' % tuple(int(c) for c in color[:3])


class WebDemo:
    """The page's logic around one shared inferencer; :meth:`build` makes the Gradio app."""

    def __init__(self, inferencer: XDecoderInferencer, out_root: Optional[str] = None,
                 scale: Optional[int] = None, keep: int = 20) -> None:
        self.inferencer = inferencer
        self.out_root = out_root or tempfile.mkdtemp(prefix='xdecoder_web_demo_')
        os.makedirs(self.out_root, exist_ok=True)
        self.scale = scale
        self.keep = keep
        self.lock = threading.Lock()
        classes = inferencer.dataset_classes()
        if classes.get('thing_classes'):
            self.default_things = list(classes['thing_classes'])
            self.default_stuff = list(classes.get('stuff_classes', []))
        else:
            self.default_things, self.default_stuff = list(classes.get('classes', [])), []
        default = getattr(inferencer, 'default_task', 'semantic')
        self.default_task = default if default in TASK_NAMES else 'semantic'

    # ------------------------------------------------------------------ input checks
    def check(self, task, image, files, vocabulary, stuff, phrases, scale) -> dict:
        """The inferencer's arguments for the page's input, or an :class:`InputError`."""
        if task not in TASK_NAMES:
            raise InputError(f'Unknown task {task!r}; choose one of: '
                             f'{", ".join(TASK_NAMES)}.')
        kwargs = dict(task=task, scale=self._scale(scale))
        if task == 'retrieval':
            paths = [p for p in (_path(f) for f in (files or [])) if p]
            if not paths:
                raise InputError('Retrieval needs images: upload one or more photos in the '
                                 '"Images (retrieval)" box.')
            kwargs['inputs'] = paths
        else:
            path = _path(image)
            if not path:
                raise InputError('No image: upload a photo (drop it on the Image box) first.')
            kwargs['inputs'] = path
        words = split_texts(phrases)
        if task in SEGMENTATION:
            things, stuff_names = split_texts(vocabulary), split_texts(stuff)
            names = things + stuff_names
            if not names:
                raise InputError('The vocabulary is empty: type class names separated by "." '
                                 'or one per line, e.g. "sky . tree . person" (the box starts '
                                 "with the config dataset's classes; reload the page to get "
                                 'them back).')
            twice = sorted(n for n, c in Counter(names).items() if c > 1)
            if twice:
                raise InputError(f'Duplicate class names in the vocabulary: '
                                 f'{", ".join(repr(n) for n in twice)}. Give each class once '
                                 '(also across the things and stuff boxes).')
            if task == 'panoptic' and not things:
                raise InputError('Panoptic segmentation needs thing classes: the "Classes" box '
                                 'is empty (stuff classes alone make no instances).')
            kwargs.update(texts=things, stuff_texts=stuff_names or None)
        elif task == 'caption':
            if words:
                raise InputError('Captioning describes the whole image and takes no phrase: '
                                 'clear the "Phrases" box, or choose "Referring captioning" to '
                                 'caption the region a phrase names.')
        else:
            if not words:
                raise InputError(f'{TASK_NAMES[task]} needs a phrase: type it in the "Phrases" '
                                 'box (one per line), e.g. "the red car".')
            if task == 'ref-caption' and len(words) != 1:
                raise InputError(f'Referring captioning captions one region: give one phrase, '
                                 f'got {len(words)}: {words}.')
            twice = sorted(n for n, c in Counter(words).items() if c > 1)
            if twice:
                raise InputError(f'Duplicate phrases: {", ".join(repr(n) for n in twice)}. '
                                 'Give each phrase once.')
            kwargs['texts'] = words
        return kwargs

    @staticmethod
    def _scale(scale) -> Optional[int]:
        if scale in (None, ''):
            return None
        try:
            value = float(scale)
        except (TypeError, ValueError):
            raise InputError(f'Short side must be a number of pixels, got {scale!r}.')
        if value == 0:
            return None
        if value != int(value) or not MIN_SCALE <= value <= MAX_SCALE:
            raise InputError(f'Short side must be a whole number of pixels from {MIN_SCALE} to '
                             f'{MAX_SCALE} (or 0 / empty for the task\'s default), got {scale}.')
        return int(value)

    # ------------------------------------------------------------------ one request
    def predict(self, task, image, files, vocabulary, stuff, phrases, scale,
                progress=gr.Progress()):
        """One press of "Run": ``(status, drawing, gallery, legend, caption, probabilities,
        download)``. Never raises: problems become the status message."""
        try:
            progress(0.0, desc='Checking the input')
            kwargs = self.check(task, image, files, vocabulary, stuff, phrases, scale)
            progress(0.1, desc='Waiting for the model')
            with self.lock:
                progress(0.2, desc=f'Running {TASK_NAMES[task].lower()}')
                out_dir = osp.join(self.out_root, f'{time.strftime("%Y%m%d_%H%M%S")}_{task}_'
                                   f'{uuid.uuid4().hex[:6]}')
                start = time.perf_counter()
                result = self.inferencer(out_dir=out_dir, return_vis=True,
                                         pred_score_thr=PRED_SCORE_THR, **kwargs)
                seconds = time.perf_counter() - start
                palette = self._palette()
                progress(0.9, desc='Packing the download')
                # Inside the lock too: pruning old results never meets a folder being zipped.
                return self._outputs(task, result, out_dir, seconds, palette)
        except (InputError, ValueError, TypeError, FileNotFoundError, FileExistsError) as e:
            return self._message(f'**Error:** {e}')
        except Exception as e:  # anything else: logged in full, one line in the page
            logger.exception('web demo: %s failed', task)
            return self._message(f'**Error:** {type(e).__name__}: {e} (the server log has the '
                                 'details).')

    def _palette(self) -> Optional[list]:
        """The colours the visualizer just drew the last image with (label -> RGB)."""
        meta = getattr(getattr(self.inferencer, 'visualizer', None), 'dataset_meta', None)
        return list(meta['palette']) if meta and meta.get('palette') else None

    @staticmethod
    def _message(text):
        return (text, gr.update(value=None), gr.update(value=None), '', '', gr.update(value=None),
                gr.update(value=None))

    def _outputs(self, task, result, out_dir, seconds, palette):
        preds, drawings = result['predictions'], result['visualization'] or []
        archive = self._archive(out_dir, task)
        n = len(preds)
        # The folder name makes each status new, also for a repeated request.
        status = (f'Done: {TASK_NAMES[task].lower()} on {n} image{"s" * (n != 1)} in '
                  f'{seconds:.1f} s. Saved predictions (meta.json, masks, vis.jpg, ...): '
                  f'{osp.basename(archive)}')
        caption = gr.update(value='', visible=False)
        if task == 'retrieval':
            probs = result['retrieval']
            names = [p['name'] for p in preds]
            legend = self._retrieval_legend(probs, names)
            table = [[name] + [round(probs[t][i], 4) for t in probs] for i, name in
                     enumerate(names)]
            table = dict(headers=['image'] + list(probs), data=table)
            gallery = [(d, p['name']) for d, p in zip(drawings, preds)]
            return (status, gr.update(value=None, visible=False),
                    gr.update(value=gallery, visible=True), legend, caption,
                    gr.update(value=table, visible=True), archive)
        pred = preds[0]
        if 'caption' in pred:
            caption = gr.update(value=pred['caption']['text'], visible=True)
        legend = self._legend(pred, palette)
        return (status, gr.update(value=drawings[0], visible=True),
                gr.update(value=None, visible=False), legend, caption,
                gr.update(value=None, visible=False), archive)

    def _archive(self, out_dir: str, task: str) -> str:
        """Zip the request's folder; old results beyond ``keep`` are removed."""
        archive = shutil.make_archive(out_dir, 'zip', root_dir=out_dir)
        entries = sorted((e for e in os.scandir(self.out_root) if e.is_dir()),
                         key=lambda e: e.stat().st_mtime)
        for old in entries[:-self.keep] if self.keep > 0 else []:
            shutil.rmtree(old.path, ignore_errors=True)
            if osp.exists(old.path + '.zip'):
                os.remove(old.path + '.zip')
        return archive

    # ------------------------------------------------------------------ legend
    @staticmethod
    def _rows_html(rows, header) -> str:
        """rows: (colour or None, name, value text); a colour column only if some have one."""
        if not rows:
            return '<p>Nothing found above the thresholds.</p>'
        swatches = any(color is not None for color, _, _ in rows)
        cells = []
        for color, name, value in rows:
            swatch = ''
            if swatches:
                swatch = '<td>' + (f'<span class="swatch" style="background:{_hex(color)}">'
                                   '</span>' if color is not None else '') + '</td>'
            cells.append(f'<tr>{swatch}<td>{html.escape(str(name))}</td>'
                         f'<td>{html.escape(value)}</td></tr>')
        head = '<th></th>' if swatches else ''
        return (f'<table class="legend"><thead><tr>{head}<th>{header[0]}</th>'
                f'<th>{header[1]}</th></tr></thead><tbody>{"".join(cells)}</tbody></table>')

    def _legend(self, pred: dict, palette) -> str:
        def color(label):
            return palette[label] if palette and 0 <= label < len(palette) else None

        classes = pred.get('classes', [])
        if 'sem_seg' in pred:
            labels, counts = np.unique(pred['sem_seg'], return_counts=True)
            total = pred['sem_seg'].size
            rows = [(color(int(k)), classes[k], f'{100 * c / total:.1f} %')
                    for k, c in sorted(zip(labels, counts), key=lambda x: -x[1])
                    if k < len(classes)]
            return self._rows_html(rows, ('class', 'area'))
        if 'instances' in pred:
            inst = pred['instances']
            rows = [(color(int(k)), classes[k], f'{s:.2f}')
                    for k, s in zip(inst['labels'], inst['scores']) if s > PRED_SCORE_THR]
            return self._rows_html(rows, ('instance', 'score'))
        if 'segments' in pred:
            total = float(np.prod(pred['shape']))
            rows = [(color(s['label']), classes[s['label']] + (' (thing)' if s['isthing'] else ''),
                     f'{100 * s["area"] / total:.1f} %') for s in pred['segments']]
            return self._rows_html(rows, ('segment', 'area'))
        if 'referring' in pred:
            ref = pred['referring']
            total = float(np.prod(pred['shape']))
            found = zip(ref['phrases'], ref['scores'], ref['masks'])
            rows = [(color(k), phrase, f'score {score:.2f}, area {100 * m.sum() / total:.1f} %')
                    for k, (phrase, score, m) in enumerate(found)]
            return self._rows_html(rows, ('phrase', 'mask'))
        return ''

    def _retrieval_legend(self, probs: dict, names: List[str]) -> str:
        rows = []
        for text, row in probs.items():
            best = int(np.argmax(row))
            rows.append((None, text, f'{names[best]} (p = {row[best]:.3f})'))
        return self._rows_html(rows, ('phrase', 'best image'))

    # ------------------------------------------------------------------ page
    def layout(self, task):
        """Which boxes a task uses: image, images, classes, stuff, phrases."""
        return (gr.update(visible=task != 'retrieval'), gr.update(visible=task == 'retrieval'),
                gr.update(visible=task in SEGMENTATION), gr.update(visible=task in SEGMENTATION),
                gr.update(visible=task in PHRASE_TASKS or task == 'caption'))

    def build(self) -> gr.Blocks:
        with gr.Blocks(title='X-Decoder', analytics_enabled=False,
                       delete_cache=(3600, 3600)) as demo:
            gr.Markdown('# X-Decoder\nSegment with any vocabulary, find what a phrase names, '
                        'caption an image or a region, retrieve images by text.')
            with gr.Row():
                with gr.Column():
                    task = gr.Radio(TASK_CHOICES, value=self.default_task, label='Task',
                                    elem_id='task')
                    image = gr.Image(type='filepath', label='Image', elem_id='input-image',
                                     sources=['upload', 'clipboard'],
                                     visible=self.default_task != 'retrieval')
                    files = gr.File(file_count='multiple', file_types=['image'],
                                    label='Images (retrieval)', elem_id='input-files',
                                    visible=self.default_task == 'retrieval')
                    in_seg = self.default_task in SEGMENTATION
                    vocabulary = gr.Textbox(
                        ' . '.join(self.default_things), label='Classes (things for panoptic)',
                        info='separated by "." or one per line; starts with the config '
                             "dataset's classes", lines=3, max_lines=8, elem_id='vocabulary',
                        visible=in_seg)
                    stuff = gr.Textbox(
                        ' . '.join(self.default_stuff), label='Stuff classes (panoptic)',
                        info='semantic and instance use them as more classes', lines=1,
                        max_lines=4, elem_id='stuff', visible=in_seg)
                    phrases = gr.Textbox(
                        '', label='Phrases', info='one per line: referring segmentation, '
                        'referring captioning (one), retrieval; none for captioning',
                        lines=2, max_lines=6, elem_id='phrases',
                        visible=self.default_task in PHRASE_TASKS + ('caption', ))
                    scale = gr.Number(self.scale, label='Short side in pixels (empty: the '
                                      "task's default; smaller is faster)", precision=0,
                                      elem_id='scale')
                    run = gr.Button('Run', variant='primary', elem_id='run')
                with gr.Column():
                    status = gr.Markdown('Upload a photo, choose a task and press Run.',
                                         elem_id='status')
                    drawing = gr.Image(label='Prediction', format='png', interactive=False,
                                       elem_id='drawing')
                    gallery = gr.Gallery(label='Predictions', format='png', visible=False,
                                         elem_id='gallery', columns=3)
                    caption = gr.Textbox(label='Caption', interactive=False, elem_id='caption',
                                         visible=False)
                    legend = gr.HTML(label='Legend', elem_id='legend')
                    table = gr.Dataframe(label='Retrieval probability of each image per phrase',
                                         interactive=False, visible=False, elem_id='retrieval')
                    download = gr.File(label='Saved predictions (zip)', interactive=False,
                                       elem_id='download')
            task.change(self.layout, task, [image, files, vocabulary, stuff, phrases],
                        queue=False)
            # preprocess=False: the function gets the uploaded files' paths and reads them
            # itself, so that an unreadable file becomes a message instead of a Gradio error.
            run.click(self.predict, [task, image, files, vocabulary, stuff, phrases, scale],
                      [status, drawing, gallery, legend, caption, table, download],
                      preprocess=False, api_name='predict')
        demo.queue(default_concurrency_limit=1, max_size=32)
        return demo


CSS = """
.legend td, .legend th {padding: 2px 8px; text-align: left}
.swatch {display: inline-block; width: 14px; height: 14px; border: 1px solid #888}
"""


def launch(demo: gr.Blocks, out_root: str, host: str = '127.0.0.1', port: int = 7860,
           share: bool = False, block: bool = True):
    """Serve the page; returns ``(app, local_url, share_url)`` once it is up, or with
    ``block=True`` serves until Ctrl+C."""
    app, url, share_url = demo.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=True,
        show_error=True, quiet=True, allowed_paths=[osp.abspath(out_root)], run_history=False,
        enable_monitoring=False, mcp_server=False, ssr_mode=False, pwa=False, css=CSS)
    print(f'X-Decoder web demo on {url}' + (f' and {share_url}' if share_url else '') +
          f'; predictions under {out_root}', flush=True)
    if block:
        demo.block_thread()  # until Ctrl+C
    return app, url, share_url


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='X-Decoder web demo (Gradio)')
    parser.add_argument('config', help='config file, or a name in projects/XDecoder/configs')
    parser.add_argument('--weights', required=True,
                        help='checkpoint file, e.g. xdecoder_focalt_best_openseg.pt (README '
                             '"Checkpoints" says where to download it)')
    parser.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (0.0.0.0: every interface)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--share', choices=('off', 'on'), default='off',
                        help='on: a public Gradio link (needs the internet)')
    parser.add_argument('--scale', type=int,
                        help="the page's default short side (empty: each task's own)")
    parser.add_argument('--out-dir', help='where requests save their predictions '
                                          '(default: a fresh temporary folder)')
    parser.add_argument('--keep', type=int, default=20,
                        help='results kept in --out-dir (older ones are removed)')
    return parser.parse_args(argv)


def main(argv=None, block: bool = True):
    """Build the model once, then serve. ``block=False`` returns ``(demo, local_url)`` with
    the server running in the background (tests)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # tracebacks of failed requests
    inferencer = XDecoderInferencer(args.config, weights=args.weights, device=args.device)
    page = WebDemo(inferencer, out_root=args.out_dir, scale=args.scale, keep=args.keep)
    demo = page.build()
    _, url, _ = launch(demo, page.out_root, args.host, args.port, args.share == 'on', block)
    return demo, url


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
