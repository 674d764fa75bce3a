"""The arithmetic behind the benchmark's published figures: percentiles, best-of timing, the
same-round speed ratios the targets are read from, and the oneDNN verbose trace summed into kernel
time. A slip in any of these would change a number in docs/performance.md without a timing
changing, so they are tested on constructed inputs (no timing, no TensorFlow)."""

from __future__ import annotations

import itertools

import pytest

from bench import kernel_share, timing
from bench.run import same_round_ratios

# Real lines of a oneDNN 3.x trace as TensorFlow 2.21 prints it (ONEDNN_VERBOSE=1), one text
# through serving_parts_2; gemm_api lines have an empty implementation field.
IP = (
    "onednn_verbose,v1,primitive,exec,cpu,inner_product,x64:gemm:jit,forward_training,src:f32::blocked:ab::f0 "
    "wei:f32::blocked:ba::f0 bia:f32:a:blocked:a::f0 dst:f32::blocked:ab::f0,attr-scratchpad:user,,mb22ic384oc576,{t}"
)
GEMM = (
    "onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_f32::blocked:ab:f0 wei_f32::blocked:ab:f0 "
    "dst_f32::blocked:ab:f0,,,22x192:192x384,{t}"
)
LN = (
    "onednn_verbose,v1,primitive,exec,cpu,layer_normalization,jit:uni,forward_inference,src:f32::blocked:ab::f0 "
    "dst:f32::blocked:ab::f0 stats:undef::undef::: scale:f32::blocked:a::f0 shift:f32::blocked:a::f0,,flags:CH,22x384,{t}"
)
CREATE = (
    "onednn_verbose,v1,primitive,create:cache_miss,cpu,inner_product,x64:gemm:jit,forward_training,,,mb22ic384oc576,0.5"
)
INFO = "onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2"


def test_quantile_is_a_measured_value_by_nearest_rank() -> None:
    assert timing.quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert timing.quantile([5.0, 1.0], 0.0) == 1.0
    assert timing.quantile([5.0, 1.0], 1.0) == 5.0
    ten = [float(v) for v in range(10, 0, -1)]
    assert timing.quantile(ten, 0.99) == 10.0  # rank round(0.99 * 9) = 9: the largest
    assert timing.quantile(ten, 0.9) == 9.0  # rank round(8.1) = 8
    assert timing.quantile([1.0, 2.0, 3.0, 4.0], 0.5) in (2.0, 3.0)  # never 2.5
    with pytest.raises(ValueError):
        timing.quantile([], 0.5)


def test_best_of_skips_the_warm_up_call_and_keeps_the_fastest(monkeypatch: pytest.MonkeyPatch) -> None:
    # perf_counter readings in pairs (start, end) for the 3 timed runs: 4 s, 1 s, 2 s.
    clock = iter([0.0, 4.0, 10.0, 11.0, 20.0, 22.0])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = itertools.count()
    best, last = timing.best_of(lambda: next(calls), repeat=3)
    assert best == 1.0
    assert last == 3  # the warm-up was call 0 and was not timed (the clock has no reading for it)


def _res(**bulk_seconds: list[float]) -> dict:
    return {"runtimes": {rt: {"bulk_seconds": s} for rt, s in bulk_seconds.items()}}


def test_same_round_ratios_pair_each_round_with_itself() -> None:
    # The machine slows down 2x from round 2 on; ONNX Runtime's fast round is round 1, ours was
    # timed while the machine was slow in every round. Per round we are 2x, 2x, 1.25x.
    res = _res(onnxruntime=[10.0, 20.0, 20.0], ours=[5.0, 10.0, 16.0])
    r = same_round_ratios(res)["ours"]
    assert r == {"median": 2.0, "min": 1.25, "max": 2.0}
    # Where drift hits the runtimes in different rounds, the two readings part: per round 2x, 0.5x,
    # 2x (median 2x), while the ratio of the medians, 10 s / 15 s, would say 0.67x.
    drift = _res(onnxruntime=[10.0, 10.0, 30.0], ours=[5.0, 20.0, 15.0])
    assert same_round_ratios(drift)["ours"] == {"median": 2.0, "min": 0.5, "max": 2.0}


def test_same_round_ratios_report_only_what_ran_and_refuse_unpaired_rounds() -> None:
    assert same_round_ratios(_res(ours=[1.0])) == {}  # no ONNX Runtime: nothing to compare with
    both = same_round_ratios(_res(onnxruntime=[4.0], ours=[2.0], **{"ours-bf16": [1.0]}))
    assert both == {
        "ours": {"median": 2.0, "min": 2.0, "max": 2.0},
        "ours-bf16": {"median": 4.0, "min": 4.0, "max": 4.0},
    }
    assert set(same_round_ratios(_res(onnxruntime=[4.0], ours=[2.0]))) == {"ours"}
    with pytest.raises(ValueError):
        same_round_ratios(_res(onnxruntime=[4.0, 4.0], ours=[2.0]))


def test_parse_verbose_sums_each_primitive_per_call_after_the_mark() -> None:
    warm_up = [IP.format(t="50.0"), INFO]  # before the mark: first-call set-up, not counted
    call = [IP.format(t="0.1"), IP.format(t="0.3"), GEMM.format(t="0.025"), LN.format(t="0.005"), CREATE]
    out = "\n".join([*warm_up, "@@MARK", *call, *call, "@@RESULT {}"])
    r = kernel_share.parse_verbose(out, calls=2)
    rows = {(row["primitive"], row["impl"], row["shape"]): row for row in r["rows"]}
    assert set(rows) == {
        ("inner_product", "x64:gemm:jit", "mb22ic384oc576"),
        ("gemm_api", "-", "22x192:192x384"),
        ("layer_normalization", "jit:uni", "22x384"),
    }
    ip = rows["inner_product", "x64:gemm:jit", "mb22ic384oc576"]
    assert ip["per_call"] == 2 and ip["ms"] == pytest.approx(0.4)
    assert rows["gemm_api", "-", "22x192:192x384"]["ms"] == pytest.approx(0.025)
    assert r["kernel_ms"] == pytest.approx(0.43)
    assert [row["primitive"] for row in r["rows"]] == ["inner_product", "gemm_api", "layer_normalization"]


def test_parse_verbose_needs_the_mark() -> None:
    with pytest.raises(IndexError):
        kernel_share.parse_verbose(IP.format(t="0.1"), calls=1)
