"""demo/web_demo.py: the Gradio page, driven by headless Chromium through selenium.

The app is started by ``web_demo.main`` on 127.0.0.1 with the parity sample's seed-1 weights;
the model is the test's own inferencer (few caption steps), and the page's default short side
is 64 pixels, so every run is small. What the page shows is compared with what the inferencer
returns for the same photo. Chromium and its driver are Debian's ``chromium`` and
``chromium-driver`` (tools/setup_env.sh installs them); nothing downloads a browser.
"""
import io
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from xdecoder_test_utils import ROOT

CHROMIUM = next(filter(None, map(shutil.which, ('chromium', 'chromium-browser'))), None)
CHROMEDRIVER = shutil.which('chromedriver')
SCALE = 64
CAPTION_STEPS = 4
SMALL = ['sky', 'tree', 'rocket']
CONFIG = str(ROOT / 'projects/XDecoder/configs/xdecoder-tiny_zeroshot_semseg.py')
# Only loopback: no proxy for the test's own requests.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope='module')
def web_demo():
    """The demo module; the environment it sets for Gradio is put back afterwards."""
    keys = ('GRADIO_ANALYTICS_ENABLED', 'HF_HUB_DISABLE_TELEMETRY', 'HF_HUB_OFFLINE')
    saved = {k: os.environ.get(k) for k in keys}
    sys.path.insert(0, str(ROOT / 'demo'))
    import gradio.analytics
    import web_demo
    assert not gradio.analytics.analytics_enabled()
    yield web_demo
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope='module')
def inferencer(synthetic_checkpoint):
    from projects.XDecoder.xdecoder.inferencer import XDecoderInferencer
    return XDecoderInferencer(CONFIG, weights=str(synthetic_checkpoint), device='cpu',
                              test_cfg=dict(caption_steps=CAPTION_STEPS))


@pytest.fixture(scope='module')
def photo():
    import skimage.data
    return os.path.join(skimage.data.data_dir, 'rocket.jpg')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(web_demo, inferencer, synthetic_checkpoint, tmp_path_factory):
    """The app as ``python demo/web_demo.py`` starts it, sharing the test's inferencer."""
    builds = []

    def shared(model, weights, device):
        assert (model, weights, device) == (CONFIG, str(synthetic_checkpoint), 'cpu')
        builds.append(model)
        return inferencer

    original, web_demo.XDecoderInferencer = web_demo.XDecoderInferencer, shared
    out = tmp_path_factory.mktemp('web_demo_out')
    try:
        demo, url = web_demo.main([CONFIG, '--weights', str(synthetic_checkpoint), '--device',
                                   'cpu', '--port', str(free_port()), '--scale', str(SCALE),
                                   '--out-dir', str(out)], block=False)
    finally:
        web_demo.XDecoderInferencer = original
    assert url.startswith('http://127.0.0.1:')
    yield url.rstrip('/'), builds
    demo.close()


@pytest.fixture(scope='module')
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip('no Chromium here: the browser test needs Debian\'s "chromium" and '
                    '"chromium-driver" (tools/setup_env.sh installs them as root: '
                    'apt-get install -y chromium chromium-driver)')
    os.environ['SE_OFFLINE'] = 'true'  # selenium never looks for a driver to download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                '--window-size=1280,1800', '--no-proxy-server', '--no-first-run',
                '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--disable-extensions', '--disable-default-apps',
                '--force-device-scale-factor=1'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


# ------------------------------------------------------------------ page helpers
def wait_for(condition, timeout=120, what='the page'):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for {what}')


def find(driver, css):
    from selenium.webdriver.common.by import By
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def open_page(driver, url):
    driver.get(url)
    wait_for(lambda: find(driver, '#input-image input[type=file]'), 60, 'the upload box')


def choose_task(driver, label):
    from selenium.webdriver.common.by import By
    radio = wait_for(lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, '#task label')
                              if e.text.strip() == label], 30, f'the task {label!r}')
    radio[0].click()


def type_into(driver, box_id, text):
    from selenium.webdriver.common.keys import Keys

    # A box appears once the task's layout has come back from the server.
    box = wait_for(lambda: find(driver, f'#{box_id} textarea'), 30, f'the box {box_id!r}')
    box.send_keys(Keys.CONTROL, 'a')
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)


def upload(driver, path):
    find(driver, '#input-image input[type=file]').send_keys(str(path))
    wait_for(lambda: find(driver, '#input-image img'), 30, 'the uploaded photo')


def run_and_wait(driver):
    """Press Run; the status once it has changed from the previous one."""
    before = find(driver, '#status').text
    find(driver, '#run').click()
    return wait_for(lambda: (lambda t: t != before and t.startswith(('Done', 'Error')) and t)(
        find(driver, '#status').text), 180, 'the result')


def fetch(url) -> bytes:
    assert url.startswith('http://127.0.0.1:'), url
    with LOCAL.open(url, timeout=30) as response:
        return response.read()


def shown_image(driver, css):
    """The <img> the page shows, as decoded pixels, and its natural size."""
    img = wait_for(lambda: find(driver, css), 30, css)
    size = driver.execute_script('return [arguments[0].naturalWidth, arguments[0].naturalHeight]',
                                 img)
    return np.asarray(Image.open(io.BytesIO(fetch(img.get_attribute('src')))).convert('RGB')), \
        tuple(size)


def loaded_urls(driver):
    return driver.execute_script(
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).map(e => e.name)")


# ------------------------------------------------------------------ browser tests
def test_semantic_and_caption_in_the_browser(browser, server, inferencer, photo, tmp_path,
                                             monkeypatch):
    url, builds = server
    open_page(browser, url)
    # The vocabulary starts with the config dataset's classes (ADE20K-150).
    classes = inferencer.dataset_classes()['classes']
    assert len(classes) == 150
    box = find(browser, '#vocabulary textarea')
    assert box.get_property('value') == ' . '.join(classes)
    width, height = Image.open(photo).size

    choose_task(browser, 'Semantic segmentation')
    upload(browser, photo)
    type_into(browser, 'vocabulary', ' . '.join(SMALL))
    status = run_and_wait(browser)
    assert status.startswith('Done: semantic segmentation on 1 image'), status
    # The same call here finds the page's class embeddings in the shared model's cache.
    encoder = inferencer.model.text_encoder
    computed = []
    monkeypatch.setattr(encoder, '_eot_features',
                        lambda *a, f=encoder._eot_features: computed.append(1) or f(*a))
    expected = inferencer(photo, texts=SMALL, task='semantic', return_vis=True, scale=SCALE)
    assert not computed
    drawing, natural = shown_image(browser, '#drawing img')
    assert natural == (width, height) and drawing.shape == (height, width, 3)
    assert np.array_equal(drawing, expected['visualization'][0])  # PNG: lossless
    sem_seg = expected['predictions'][0]['sem_seg']
    legend = find(browser, '#legend').text
    for label in np.unique(sem_seg):
        assert SMALL[label] in legend
    # The download is the saved folder, as the inferencer lays it out.
    href = wait_for(lambda: find(browser, '#download a'), 30, 'the download link')
    archive = zipfile.ZipFile(io.BytesIO(fetch(href.get_attribute('href'))))
    assert sorted(archive.namelist()) == ['rocket/', 'rocket/meta.json', 'rocket/semantic.png',
                                          'rocket/vis.jpg']
    saved = np.asarray(Image.open(io.BytesIO(archive.read('rocket/semantic.png'))))
    assert np.array_equal(saved, sem_seg)
    assert json.loads(archive.read('rocket/meta.json'))['classes'] == SMALL
    # A screenshot for a person to look at.
    shot = tmp_path / 'web_demo_semantic.png'
    assert browser.save_screenshot(str(shot))
    viewport = browser.execute_script('return [window.innerWidth, window.innerHeight]')
    picture = Image.open(shot)
    assert picture.size == tuple(viewport) and viewport[0] >= 1000 and viewport[1] >= 1000
    assert np.asarray(picture.convert('L')).std() > 10  # not a blank page
    print(f'screenshot: {shot}')

    choose_task(browser, 'Captioning')
    status = run_and_wait(browser)
    assert status.startswith('Done: captioning on 1 image'), status
    text = inferencer(photo, task='caption', scale=SCALE)['predictions'][0]['caption']['text']
    assert text
    shown = wait_for(lambda: find(browser, '#caption textarea').get_property('value'), 30,
                     'the caption')
    assert shown == text
    assert shown_image(browser, '#drawing img')[1] == (width, height)
    # Nothing came from anywhere but the app itself (no CDN, no telemetry).
    assert all(u.startswith((url, 'data:', 'blob:')) for u in loaded_urls(browser)), \
        loaded_urls(browser)


def test_bad_input_gets_a_message_and_the_app_keeps_serving(browser, server, photo, tmp_path):
    url, builds = server
    open_page(browser, url)
    choose_task(browser, 'Semantic segmentation')
    assert run_and_wait(browser).startswith('Error: No image: upload a photo')
    upload(browser, photo)
    type_into(browser, 'vocabulary', '')
    status = run_and_wait(browser)
    assert status.startswith('Error: The vocabulary is empty'), status
    type_into(browser, 'vocabulary', 'sky . tree . sky')
    assert run_and_wait(browser).startswith("Error: Duplicate class names in the vocabulary: "
                                            "'sky'")
    choose_task(browser, 'Captioning')
    type_into(browser, 'phrases', 'the rocket')
    assert run_and_wait(browser).startswith('Error: Captioning describes the whole image and '
                                            'takes no phrase')
    # An unreadable file (here in the retrieval box) is named in the message.
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    choose_task(browser, 'Retrieval')
    wait_for(lambda: find(browser, '#input-files input[type=file]'), 30, 'the images box')
    find(browser, '#input-files input[type=file]').send_keys(str(broken))
    wait_for(lambda: 'broken' in find(browser, '#input-files').text, 30, 'the upload')
    status = run_and_wait(browser)
    assert status.startswith('Error: Cannot decode image') and 'broken.jpg' in status, status
    assert 'Traceback' not in browser.page_source
    # ... and still serves.
    choose_task(browser, 'Semantic segmentation')
    type_into(browser, 'vocabulary', ' . '.join(SMALL))
    assert run_and_wait(browser).startswith('Done: semantic segmentation')
    assert len(builds) == 1  # one model per process, whatever the requests


class Held:
    """The inferencer, holding each call until the test lets it go."""

    def __init__(self, inner):
        self.inner, self.started, self.release = inner, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        self.started.set()
        assert self.release.wait(120)
        return self.inner(*args, **kwargs)


def test_a_long_request_shows_progress_and_the_next_waits_in_the_queue(browser, web_demo,
                                                                       inferencer, photo):
    held = Held(inferencer)
    page = web_demo.WebDemo(held, scale=SCALE)
    demo = page.build()
    _, url, _ = web_demo.launch(demo, page.out_root, port=free_port(), block=False)
    first = browser.current_window_handle
    try:
        for tab in range(2):
            if tab:
                browser.switch_to.new_window('tab')
            open_page(browser, url)
            upload(browser, photo)
            type_into(browser, 'vocabulary', ' . '.join(SMALL))
            find(browser, '#run').click()
            if not tab:
                assert held.started.wait(60)
                wait_for(lambda: 'Running semantic segmentation' in find(browser, '#status').text,
                         30, 'the progress message')
        wait_for(lambda: 'queue: 1/1' in find(browser, '#status').text, 30, 'the queue position')
        held.release.set()
        for handle in browser.window_handles[::-1]:
            browser.switch_to.window(handle)
            wait_for(lambda: find(browser, '#status').text.startswith('Done'), 120, 'the result')
    finally:
        held.release.set()
        for handle in browser.window_handles:
            if handle != first:
                browser.switch_to.window(handle)
                browser.close()
        browser.switch_to.window(first)
        demo.close()


# ------------------------------------------------------------------ without a browser
@pytest.fixture(scope='module')
def page(web_demo, inferencer, tmp_path_factory):
    return web_demo.WebDemo(inferencer, out_root=str(tmp_path_factory.mktemp('page')),
                            scale=SCALE, keep=3)


def predict(page, task='semantic', image=None, files=None, vocabulary='', stuff='',
            phrases='', scale=SCALE):
    return page.predict(task, image, files, vocabulary, stuff, phrases, scale)


def test_missing_checkpoint_says_where_to_get_it(web_demo, tmp_path):
    with pytest.raises(FileNotFoundError, match='wget https://huggingface.co'):
        web_demo.main([CONFIG, '--weights', str(tmp_path / 'xdecoder_focalt_best_openseg.pt')])


def test_unreadable_file_and_internal_errors_are_one_line(page, tmp_path, monkeypatch):
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    status = predict(page, image={'path': str(broken)}, vocabulary='sky . tree')[0]
    assert status.startswith('**Error:** Cannot decode image') and 'broken.jpg' in status
    status = predict(page, task='retrieval', files=[{'path': str(broken)}], phrases='a cat')[0]
    assert status.startswith('**Error:** Cannot decode image')
    assert predict(page, task='ref-caption', image={'path': str(broken)},
                   phrases='a cat\na dog')[0].startswith('**Error:** Referring captioning '
                                                         'captions one region')
    assert predict(page, image={'path': str(broken)}, vocabulary='sky',
                   scale=7)[0].startswith('**Error:** Short side must be a whole number')

    def crash(*args, **kwargs):
        raise RuntimeError('CUDA out of memory')

    monkeypatch.setattr(page, 'inferencer', crash)
    status = predict(page, image={'path': str(broken)}, vocabulary='sky')[0]
    assert status == ('**Error:** RuntimeError: CUDA out of memory (the server log has the '
                      'details).')


def test_concurrent_requests_do_not_mix(page, inferencer, photo):
    """Two vocabularies at once, from two threads: each gets its own drawing and files."""
    vocabularies = [['sky', 'rocket'], ['tree', 'person', 'grass']]
    expected = [inferencer(photo, texts=v, task='semantic', scale=SCALE, return_vis=True)
                for v in vocabularies]
    results = [None, None]

    def request(i):
        results[i] = predict(page, image=photo, vocabulary=' . '.join(vocabularies[i]))

    threads = [threading.Thread(target=request, args=(i, )) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for result, want, vocab in zip(results, expected, vocabularies):
        status, drawing, _, legend, _, _, archive = result
        assert status.startswith('Done'), status
        assert np.array_equal(drawing['value'], want['visualization'][0])
        with zipfile.ZipFile(archive) as z:
            assert json.loads(z.read('rocket/meta.json'))['classes'] == vocab
            saved = np.asarray(Image.open(io.BytesIO(z.read('rocket/semantic.png'))))
        assert np.array_equal(saved, want['predictions'][0]['sem_seg'])
    assert len([p for p in Path(page.out_root).iterdir() if p.is_dir()]) <= 3  # --keep


def test_retrieval_table(page, inferencer, photo, parity_dir):
    other = str(parity_dir / 'inputs' / 'input_224.png')
    status, drawing, gallery, legend, caption, table, archive = predict(
        page, task='retrieval', files=[{'path': photo}, {'path': other}],
        phrases='a rocket\nthe sky')
    assert status.startswith('Done: retrieval on 2 images'), status
    want = inferencer([photo, other], texts=['a rocket', 'the sky'], task='retrieval',
                      scale=SCALE)['retrieval']
    assert table['value']['headers'] == ['image', 'a rocket', 'the sky']
    assert [row[0] for row in table['value']['data']] == ['rocket', 'input_224']
    got = np.array([row[1:] for row in table['value']['data']])
    # The page rounds probabilities to 4 decimals; the same model on the same images otherwise.
    assert np.allclose(got, np.array([want['a rocket'], want['the sky']]).T, atol=1e-4)
    assert [name for _, name in gallery['value']] == ['rocket', 'input_224']
    with zipfile.ZipFile(archive) as z:
        assert json.loads(z.read('retrieval.json')) == want


def test_the_other_tasks_draw_and_list(page, photo):
    """Instance, panoptic, referring and referring captioning through the page's function."""
    width, height = Image.open(photo).size
    # things + stuff = SMALL: the class embeddings of the browser test are reused.
    runs = dict(instance=dict(vocabulary='sky . tree', stuff='rocket'),
                panoptic=dict(vocabulary='sky . tree', stuff='rocket'),
                referring=dict(phrases='the rocket\nthe sky'),
                **{'ref-caption': dict(phrases='the rocket')})
    for task, texts in runs.items():
        status, drawing, _, legend, caption, _, archive = predict(page, task, image=photo,
                                                                  **texts)
        assert status.startswith('Done'), (task, status)
        assert drawing['value'].shape == (height, width, 3), task
        assert legend.startswith(('<table class="legend">', '<p>Nothing found')), task
        if task == 'panoptic':
            assert '(thing)' in legend or 'rocket' in legend or 'Nothing' in legend
        if task in ('referring', 'ref-caption'):
            for phrase in texts['phrases'].splitlines():
                assert f'<td>{phrase}</td>' in legend
        assert caption['visible'] == (task == 'ref-caption')
        if task == 'ref-caption':
            assert caption['value']
        with zipfile.ZipFile(archive) as z:
            assert json.loads(z.read('rocket/meta.json'))['task'] == task
