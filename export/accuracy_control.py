"""--accuracy-control: return the layers INT8 hurts most to float, a few more each round, until the drift budgets
hold. Layers are ranked once, by the normalised error between FP32 and INT8 activations at each weighted layer's
output (Conv / Gemm, or the ReLU fused after it) on calibration batches."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

ROUNDS = (2, 4, 8, 16, 32, 64)  # layers in float after each round (cumulative)
# Last resort when layer rounds do not suffice: the whole reconstruction path in float (decoder + CBAM head).
# On the CPU-sized model ranked layers alone did not bring SSIM back even with 64 layers in float (the drop comes from
# many small decoder errors adding up); the float decoder met every budget (docs/measurements.md).
RECON_SCOPES = ("/model/decoder/", "/model/reconstruction/")


def observed_tensors(proto, skip: set[str]) -> dict[str, str]:
    """Weighted layer name -> the tensor to compare (its output, or its ReLU's, which QDQ keeps by name).

    Where the ReLU's output is observed, ORT's QDQ graph fuses the ReLU into the quantization and names the conv's
    (pre-ReLU) output after it: rank_layers applies the ReLU to both sides before comparing."""
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    out = {}
    for node in proto.graph.node:
        if node.op_type in ("Conv", "Gemm") and node.name not in skip:
            tensor = node.output[0]
            after = consumers.get(tensor, [])
            if len(after) == 1 and after[0].op_type == "Relu":
                tensor = after[0].output[0]
            out[node.name] = tensor
    return out


def _run_with_outputs(path: Path, tensors: Sequence[str], batches: Iterable[dict[str, np.ndarray]]):
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    known = {t for n in proto.graph.node for t in n.output}
    present = [t for t in tensors if t in known]
    existing = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                              for t in present if t not in existing)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"
        onnx.save(proto, str(probe))
        session = ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"])
        runs = [dict(zip(present, session.run(present, batch))) for batch in batches]
    return {t: np.concatenate([r[t] for r in runs]) for t in present}


def rank_layers(fp32: Path, int8: Path, batches: list[dict[str, np.ndarray]], skip: set[str]) -> list[tuple[str, float]]:
    """(layer, normalised MSE) for every weighted layer observable in both graphs, worst first."""
    import onnx

    observed = observed_tensors(onnx.load(str(fp32)), skip)
    ref = _run_with_outputs(fp32, list(observed.values()), batches)
    got = _run_with_outputs(int8, list(observed.values()), batches)
    errors = []
    for layer, t in observed.items():
        if t in ref and t in got:
            a, b = ref[t].astype(np.float64), got[t].astype(np.float64)
            if t.endswith("Relu_output_0"):
                a, b = np.maximum(a, 0.0), np.maximum(b, 0.0)
            errors.append((layer, float(np.mean((a - b) ** 2) / (np.mean(a ** 2) + 1e-12))))
    return sorted(errors, key=lambda e: -e[1])


def allowed_in_float(int8_layers: int, total_layers: int, min_int8_share: float) -> int:
    """How many more weighted layers may go back to float while at least `min_int8_share` of all stay INT8."""
    return max(0, int8_layers - math.ceil(min_int8_share * total_layers - 1e-9))


def _steps(rounds: Sequence[int], cap: int) -> list[int]:
    """The rounds' layer counts below the cap, then the cap itself: [2, 4, 8, 9] for a cap of 9."""
    steps = [k for k in rounds if k < cap]
    return steps + [cap] if cap > 0 and cap not in steps else steps


def control(ranking: Sequence[tuple[str, float]], build: Callable[[list[str]], Path],
            evaluate: Callable[[Path], dict], start: dict, rounds: Sequence[int] = ROUNDS,
            fallback: Sequence[str] = (), max_float: int | None = None, weighted: set[str] | None = None) -> dict:
    """Rebuild with more of the ranked layers in float until the budgets hold, never more than `max_float` weighted
    layers (those in `weighted`; default: the ranked ones); if the rounds run out, once more with the `fallback`
    nodes in float as well, when that stays within `max_float`.

    evaluate(artifact) -> {"violations": [...], "worst": largest share of any budget used}; `start` is that of
    the artifact as first built (no layer returned to float). When no round meets the budgets, the best round seen
    (least `worst`) is rebuilt, so the file on disk is the best there was, and "met" is False."""
    weighted = set(weighted) if weighted is not None else {name for name, _ in ranking}
    cap = len(ranking) if max_float is None else max(0, min(max_float, len(ranking)))
    history = [{"layers_in_float": 0, **start}]
    candidates: list[list[str]] = [[]]
    for k in _steps(rounds, cap) if start["violations"] else ():  # met as built: nothing to return to float
        kept = [name for name, _ in ranking[:k]]
        history.append({"layers_in_float": k, **evaluate(build(kept))})
        candidates.append(kept)
        if not history[-1]["violations"]:
            break
    if history[-1]["violations"] and fallback:
        kept = [name for name, _ in ranking[:min(rounds[0], cap)]] + list(fallback)
        cost = len(set(kept) & weighted)
        if cost <= cap:
            history.append({"layers_in_float": cost, "fallback": "reconstruction path", **evaluate(build(kept))})
            candidates.append(kept)
        else:
            history.append({"layers_in_float": cost, "fallback": "reconstruction path", "skipped":
                            f"would leave fewer INT8 layers than the minimum share ({cost} > {cap} allowed in float)"})
    tried = [i for i, h in enumerate(history) if "violations" in h]
    best = next((i for i in tried if not history[i]["violations"]), min(tried, key=lambda i: history[i]["worst"]))
    last = max(tried)
    if best != last:  # the file on disk is the last round's: put the best one back
        build(candidates[tried.index(best)])
    return {"met": not history[best]["violations"], "kept_in_float": candidates[tried.index(best)],
            "best_round": best, "violations": history[best]["violations"], "worst_budget_share": history[best]["worst"],
            "max_layers_in_float": cap, "rounds": history,
            "ranking": [{"layer": n, "nmse": e} for n, e in ranking[:max(rounds)]]}
