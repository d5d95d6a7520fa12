"""The page after one visit: it loads and generates with the network off; a new site version replaces the
shell as a whole while a tab is open (the tab keeps working, then switches when asked); old shells and old
model versions are evicted."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import onnx
import pytest

from qwen35web.web.build import SITE_MARKER, SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import MODEL_NAME, READY_TIMEOUT_MS, watch

pytestmark = pytest.mark.browser

GREEDY = "app.generate({prompt: 'Hello world', maxNewTokens: 6, minNewTokens: 6, greedy: true})"
SHELL_CACHES = "caches.keys().then(names => names.filter(n => n.startsWith('qwen35web-shell-')).sort())"
STORED_FILES = """caches.open('qwen35web-weights-v2').then(c => c.keys()).then(keys => keys
    .map(r => new URL(r.url).pathname.match(/^[/][.]weights[/]sha256[/]([0-9a-f]{64})$/))
    .filter(Boolean).map(m => m[1]).sort())"""


def _site_version(site: Path) -> str:
    return str(json.loads((site / SITE_MARKER).read_text())["version"])


def test_after_one_visit_the_page_loads_and_generates_offline(
    new_context, base_url: str, site_dir: Path
) -> None:
    context = new_context()
    first = watch(context, base_url)
    first.page.goto(base_url + "?backend=wasm")
    first.ready()
    # The service worker has the whole shell, for the backend in use too.
    assert first.page.evaluate("app.offline()") == {"version": _site_version(site_dir), "backend": "wasm"}
    online = first.page.evaluate(GREEDY)
    first.assert_clean()
    first.page.close()

    context.set_offline(True)
    second = watch(context, base_url)
    second.page.goto(base_url + "?backend=wasm")
    assert second.ready() == {"backend": "wasm", "model": MODEL_NAME}
    info = second.page.evaluate("app.info()")
    assert info["shellControlled"] is True
    assert info["weights"]["downloadedBytes"] == 0 and info["weights"]["cachedFiles"] == 4
    assert second.page.evaluate(GREEDY)["tokens"] == online["tokens"]
    assert info["storage"]["quota"] > 0 and isinstance(info["storage"]["persisted"], bool)
    second.assert_clean()


CORRUPT_WORKER_SCRIPT = """async () => {
    const name = (await caches.keys()).find(n => n.startsWith('qwen35web-shell-'));
    const cache = await caches.open(name);
    const url = new URL('worker/worker.js', location.href).href;
    const headers = { 'Content-Type': 'text/javascript' };
    await cache.put(url, new Response('this is not the worker', { headers }));
}"""
CACHED_WORKER_SCRIPT = """async () => {
    const name = (await caches.keys()).find(n => n.startsWith('qwen35web-shell-'));
    const hit = await (await caches.open(name)).match(new URL('worker/worker.js', location.href).href);
    return hit ? hit.text() : null;
}"""


def test_a_damaged_shell_file_in_the_cache_is_fetched_again(new_context, base_url: str) -> None:
    context = new_context()
    first = watch(context, base_url)
    first.page.goto(base_url + "?backend=wasm")
    first.ready()
    first.page.evaluate("app.offline()")
    first.page.evaluate(CORRUPT_WORKER_SCRIPT)
    first.page.close()

    again = watch(context, base_url)
    again.page.goto(base_url + "?backend=wasm")
    assert again.ready() == {"backend": "wasm", "model": MODEL_NAME}
    assert again.page.evaluate("app.info().shellControlled") is True
    served = again.page.evaluate("fetch('worker/worker.js').then(r => r.text())")
    assert again.page.evaluate(CACHED_WORKER_SCRIPT) == served and "loadModel" in served  # repaired
    assert len(again.page.evaluate(GREEDY)["tokens"]) == 6
    again.assert_clean()


def _new_model_version(bundle: Path, target: Path) -> Path:
    """The same model with a changed model.onnx (a doc string): a new version of one bundle file."""
    shutil.copytree(bundle, target)
    graph = onnx.load(str(target / "model.onnx"), load_external_data=False)
    graph.doc_string = "version two"
    onnx.save(graph, str(target / "model.onnx"))
    manifest = json.loads((target / "manifest.json").read_text())
    data = (target / "model.onnx").read_bytes()
    manifest["files"]["model.onnx"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


def _plan_hashes(bundle: Path) -> list[str]:
    files = json.loads((bundle / "manifest.json").read_text())["files"]
    return sorted(
        files[name]["sha256"] for name in ("model.onnx", "model.onnx.data", "sampler.onnx", "tokenizer.json")
    )


def test_a_site_update_while_a_tab_is_open_replaces_the_whole_shell(
    browser, tmp_path: Path, export_bundle
) -> None:
    one = export_bundle("text", "fused")
    two = _new_model_version(one, tmp_path / "bundle-two")
    site = tmp_path / "site"
    build_site(SiteSpec(site, [(MODEL_NAME, one)], {MODEL_NAME: "Version one."}))
    version_one = _site_version(site)
    with serving(site) as url:
        context = browser.new_context()
        context.set_default_timeout(READY_TIMEOUT_MS)
        try:
            tab = watch(context, url)
            tab.page.goto(url + "?backend=wasm")
            tab.ready()
            tab.page.evaluate("app.offline()")
            tab.page.reload()  # now under version one's service worker, as any later visit is
            tab.ready()
            assert tab.page.evaluate("app.info().shellControlled") is True

            build_site(SiteSpec(site, [(MODEL_NAME, two)], {MODEL_NAME: "Version two."}))
            version_two = _site_version(site)
            assert version_two != version_one
            tab.page.evaluate("app.checkForUpdate()")
            tab.page.wait_for_selector("#update-notice:not([hidden])")
            # Version two waits, fully cached; the open tab goes on with version one.
            assert tab.page.evaluate(SHELL_CACHES) == sorted(
                f"qwen35web-shell-{v}" for v in (version_one, version_two)
            )
            assert len(tab.page.evaluate(GREEDY)["tokens"]) == 6
            assert tab.page.locator("#model-note").inner_text() == "Version one."

            with tab.page.expect_navigation():
                tab.page.click("#update-reload")
            tab.ready()
            assert tab.page.locator("#model-note").inner_text() == "Version two."
            assert tab.page.evaluate("app.offline()")["version"] == version_two
            assert tab.page.evaluate(SHELL_CACHES) == [f"qwen35web-shell-{version_two}"]
            # Only version two's files are stored: version one's model.onnx was evicted.
            assert tab.page.evaluate(STORED_FILES) == _plan_hashes(two)
            assert _plan_hashes(one) != _plan_hashes(two)
            assert len(tab.page.evaluate(GREEDY)["tokens"]) == 6
            tab.assert_clean()
        finally:
            context.close()
