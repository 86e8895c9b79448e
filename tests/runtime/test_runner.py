"""The backends' async surface (runtime.backends.runner): every started request is done exactly once with its own
outputs, whatever order they finish in; OpenVINO's AsyncInferQueue, ONNX Runtime's threads and TensorRT's execution
contexts (fake tensorrt / cuda modules) give what synchronous infer gives."""
from __future__ import annotations

import importlib.util
import logging
import threading
import time

import numpy as np
import pytest

from dualpath import contract
from runtime.backends import BackendError, load_backend, trt_engine
from runtime.backends.runner import SyncRunner, ThreadRunner, runner_for

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_backends import to_openvino_ir, write_tiny_model  # noqa: E402  (same folder)
from trt_fakes import FakeGpu  # noqa: E402  (tests/)

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _start_all(runner, xs):
    """Start every x with at most runner.requests in flight; {i: outputs} once all are done."""
    results, lock, free = {}, threading.Lock(), threading.Semaphore(runner.requests)

    def done_for(i):
        def done(out):
            with lock:
                assert i not in results, f"request {i} done twice"
                results[i] = out
            free.release()
        return done

    for i, x in enumerate(xs):
        free.acquire()
        runner.start(x, done_for(i))
    runner.close()
    return results


def _frames(n, batch=1, seed=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, 3, 64, 64)).astype(np.float32) for _ in range(n)]


def test_thread_runner_gives_each_request_its_own_result_once_whatever_order_they_finish_in():
    finished = []

    def infer(x):
        time.sleep(float(abs(x[0, 0, 0, 0])) % 0.004)  # a latency that varies from frame to frame
        finished.append(float(x[0, 0, 0, 0]))
        return {"probs": x.sum(axis=(1, 2, 3))[:, None]}

    xs = _frames(40)
    results = _start_all(ThreadRunner([infer] * 4), xs)
    assert sorted(results) == list(range(40))
    for i, x in enumerate(xs):
        np.testing.assert_allclose(results[i]["probs"][:, 0], x.sum(axis=(1, 2, 3)), rtol=1e-6)
    assert finished != sorted(finished, key=[float(x[0, 0, 0, 0]) for x in xs].index)  # they did finish out of order


def test_a_failing_request_hands_a_backend_error_to_its_done():
    def infer(x):
        raise RuntimeError("device lost")

    results = _start_all(ThreadRunner([infer]), _frames(2))
    assert all(isinstance(r, BackendError) and "device lost" in str(r) for r in results.values())


def test_a_backend_without_an_async_path_runs_one_request_at_a_time_and_says_so_once(caplog):
    class Plain:
        name = "plain-test"
        metadata = type("M", (), {"input_name": "image"})()

        def infer(self, feed):
            return {"probs": feed["image"][:, :1, 0, 0]}

    with caplog.at_level(logging.WARNING, logger="runtime"):
        a, b = runner_for(Plain(), requests=4), runner_for(Plain())
    assert isinstance(a, SyncRunner) and a.requests == b.requests == 1
    assert caplog.text.count("no async path") == 1 and "--requests 4 ignored" in caplog.text
    assert sorted(_start_all(a, _frames(3))) == [0, 1, 2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


def _check_against_infer(backend, runner, xs, atol=1e-6):
    results = _start_all(runner, xs)
    for i, x in enumerate(xs):
        want = backend.infer({contract.INPUT_NAME: x})
        for name in (contract.OUTPUT_PROBS, contract.OUTPUT_RECON):
            np.testing.assert_allclose(results[i][name], want[name], atol=atol)


def test_onnxruntime_runner_matches_infer(tiny):
    with load_backend(tiny, "onnxruntime", threads=1) as be:
        runner = be.runner(requests=3)
        assert runner.requests == 3 and "3 threads" in runner.description
        _check_against_infer(be, runner, _frames(12))


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_async_infer_queue_matches_synchronous_infer(tiny, tmp_path):
    xml = to_openvino_ir(tiny, tmp_path / "tiny.xml")
    with load_backend(xml, hint="THROUGHPUT") as be:
        runner = be.runner()  # the compiled model's OPTIMAL_NUMBER_OF_INFER_REQUESTS
        assert runner.requests >= 1 and "AsyncInferQueue, THROUGHPUT hint" in runner.description
        _check_against_infer(be, runner, _frames(10), atol=1e-5)
        batched = be.runner(requests=2, batch=4)  # a static batch of 4 compiled for it
        _check_against_infer(be, batched, _frames(5, batch=4), atol=1e-5)
        assert 4 in be._requests


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_an_openvino_device_this_machine_lacks_is_refused_naming_those_it_has(tiny, tmp_path):
    xml = to_openvino_ir(tiny, tmp_path / "tiny.xml")
    with pytest.raises(BackendError, match="unknown OpenVINO device 'TPU'"):
        load_backend(xml, device="TPU")
    import openvino as ov

    if "NPU" not in ov.Core().available_devices:
        with pytest.raises(BackendError, match=r"no NPU device here \(this machine has CPU"):
            load_backend(xml, device="NPU")


def test_onnxruntime_refuses_a_provider_it_lacks_naming_those_it_has(tiny):
    with pytest.raises(BackendError, match="no execution provider 'NoSuchExecutionProvider'; it has .*CPUExecution"):
        load_backend(tiny, "onnxruntime", providers=["NoSuchExecutionProvider"])


def test_tensorrt_runner_uses_one_context_and_stream_per_request_and_close_frees_them(tmp_path, monkeypatch):
    gpu = FakeGpu("10.3.0").install(monkeypatch)
    onnx_path = write_tiny_model(tmp_path / "tiny.onnx")
    trt_engine.build(onnx_path, tmp_path / "tiny.engine", trt_engine.model_metadata(onnx_path), max_batch=4)
    be = load_backend(tmp_path / "tiny.engine")
    runner = be.runner(requests=3)
    assert runner.requests == 3 and gpu.names().count("create_execution_context") == 3
    assert len(gpu.streams) == 3  # slot 0 (infer's) and two more
    with load_backend(onnx_path, "onnxruntime", threads=1) as ref:
        _check_against_infer(ref, runner, _frames(9, batch=2))
    executed_on = [c[1] for c in gpu.calls if c[0] == "execute_async_v3"]
    assert len(executed_on) == 9 and set(executed_on) <= gpu.streams  # on the slots' streams (which thread: any)
    assert gpu.names().count("cudaSetDevice") <= 1 + 3  # the backend, then once in each thread that ran one
    be.close()
    assert not gpu.streams and gpu.memory == {}
