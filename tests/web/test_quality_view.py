"""The Quality tab in a real browser, fed by the real sample project through a real server."""

from __future__ import annotations

import threading

import tomlkit

from conftest import log_in
from rtcloud.server.config import ServerConfig, find_project_dir
from rtcloud.server.server import ProjectServer
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series


def _sample_server(tmp_path, volumes: int, tr: float, motion: float = 1.0) -> tuple:
    source, scanner = tmp_path / "source", tmp_path / "scanner"
    scanner.mkdir()
    sample = find_project_dir("sample")
    doc = tomlkit.parse((sample / "conf" / "sample.toml").read_text())
    generate_series(source, num_volumes=volumes, tr_ms=int(tr * 1000), scan=1, motion=motion)
    doc["imgDir"], doc["numVolumes"], doc["trInterval"] = str(scanner), volumes, tr
    doc["resultsDir"] = str(tmp_path / "results")
    config = tmp_path / "sample.toml"
    config.write_text(tomlkit.dumps(doc))
    server = ProjectServer(
        ServerConfig.for_project("sample", config=config, port=0, test=True)
    ).start_in_thread()
    return server, source, scanner


def test_the_quality_tab_fills_live_with_motion_latency_slices_and_alarms(page, tmp_path, shots):
    volumes, tr = 30, 0.5
    server, source, scanner = _sample_server(tmp_path, volumes, tr)
    try:
        log_in(page, server)
        page.click("#run-button")
        page.wait_for_selector("#run-status[data-state='running']")
        page.click("#tab-quality")
        replay = threading.Thread(
            target=replay_series, args=(source, scanner), kwargs={"tr": tr, "mode": "pieces"}
        )
        replay.start()
        page.wait_for_selector("#q-summary[data-volumes='10']", timeout=60000)
        page.screenshot(path=str(shots / "quality-live.png"))
        page.wait_for_selector(
            "#run-status[data-state='complete']", state="attached", timeout=90000
        )
        replay.join()
        page.wait_for_selector(f"#q-summary[data-volumes='{volumes}']")
        page.screenshot(path=str(shots / "quality-done.png"), full_page=True)
        # the simulated head jerks at volumes 25-26: FD over 0.5 mm twice, an alarm each
        assert page.text_content("#q-volumes") == str(volumes)
        assert int(page.text_content("#q-over")) >= 2
        assert int(page.get_attribute("#q-alarm-count", "data-count")) >= 2
        assert "over the threshold" in page.text_content("#q-alarms")
        assert page.is_visible("#q-alarm")
        assert page.text_content("#q-usable").endswith("min")
        # where the latest volume's time went: every hop, each stage, the feedback
        segments = page.eval_on_selector_all(
            "#q-segments tr[data-segment]:not([hidden])",
            "rows => rows.map(r => r.dataset.segment)",
        )
        for key in (
            "scanner",
            "toServer",
            "toScript",
            "script",
            "motion",
            "smooth",
            "glm",
            "feedback",
        ):
            assert key in segments, segments
        # the slices of the last volume are drawn (with the ROI's outline)
        for view in ("axial", "coronal", "sagittal"):
            assert page.get_attribute(f"#q-{view}", "data-tr-id") == str(volumes - 1)
        outline = page.evaluate(
            """() => {
              const c = document.getElementById('q-axial');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let gold = 0;
              for (let i = 0; i < d.length; i += 4) {
                if (d[i] > 200 && d[i + 1] > 180 && d[i + 2] < 60) gold++;
              }
              return gold;
            }"""
        )
        assert outline > 20  # the ROI outline (gold) is on the axial slice
        # a page opened later gets the whole run back
        page.reload()
        page.click("#tab-quality")
        page.wait_for_selector(f"#q-summary[data-volumes='{volumes}']")
        assert int(page.get_attribute("#q-alarm-count", "data-count")) >= 2
    finally:
        server.stop()


def test_motion_axes_get_labels_however_small_the_motion(page, server):
    # a still participant moves a few micrometres: the axis once had a single label, "0"
    log_in(page, server)
    page.wait_for_function("() => window.rtcloudQuality && window.rtcloudQuality.ticks")
    cases = [(-0.00456, 0.00356), (-0.0005, 0.0004), (-2.8, 2.3), (0, 7.5), (0, 1000)]
    for lo, hi in cases:
        ticks = page.evaluate("([lo, hi]) => window.rtcloudQuality.ticks(lo, hi, 4)", [lo, hi])
        assert len(ticks) >= 3, (lo, hi, ticks)
        assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks), (lo, hi, ticks)
        steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1  # evenly spaced


def test_the_latency_chart_is_scaled_to_the_volumes_not_to_a_far_tr(page, server):
    # 15 ms volumes at TR 2 s were one-pixel bars under a TR line at the top
    log_in(page, server)
    page.wait_for_function("() => window.rtcloudQuality && window.rtcloudQuality.latencyScale")

    def scale(totals, tr_ms):
        return page.evaluate(
            "([t, tr]) => window.rtcloudQuality.latencyScale(t, tr)", [totals, tr_ms]
        )

    fast = scale([12.0, 15.0, 14.0], 2000)
    assert not fast["trShown"] and 15.0 <= fast["max"] <= 20.0  # the tallest bar fills it
    near = scale([400.0, 900.0], 1000)  # near the TR: the line is drawn, bars under it
    assert near["trShown"] and near["max"] >= 1000
    late = scale([2500.0], 2000)  # slower than the TR: all of the bar, and the line
    assert late["trShown"] and late["max"] >= 2500
    assert scale([], 0)["max"] >= 1  # no volume yet


def test_a_script_s_own_quality_record_counts_volumes_over_the_threshold(page, server):
    """A record with fd and fdThreshold only (the documented minimum of a script's own
    dict) left "Over FD threshold" at 0 beside a chart with volumes over it, and no alarm."""
    from rtcloud.interfaces.client import ClientInterface

    log_in(page, server)
    page.wait_for_selector("#ind-browser[data-state='on']")
    client = ClientInterface()
    try:
        for tr, fd in enumerate([0.1, 0.9, 0.2, 1.4]):
            client.webInterface.sendQuality(1, tr, {"fd": fd, "fdThreshold": 0.5})
        page.click("#tab-quality")
        page.wait_for_selector("#q-summary[data-volumes='4']")
        assert page.text_content("#q-over") == "2"
    finally:
        client.close()
