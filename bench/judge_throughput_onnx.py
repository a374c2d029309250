"""Would ONNX Runtime score reward-model pairs faster than torch bfloat16? The trained MiniLM encoder exported to
ONNX (fp32, and int8 by ONNX Runtime's dynamic quantization) vs torch bf16, on the same token ids of 1,024
hh-rlhf held-out pairs (each distinct prompt and response once, length-sorted batches, 2 threads).

    pip install onnx onnxruntime          # not synthloop dependencies: this only measures the alternative
    flock /tmp/synthloop-heavy.lock python bench/judge_throughput_onnx.py

Saves bench/results/judge_throughput_onnx.json (pairs/s = 1,024 / seconds to embed that pair set's texts).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))



def main() -> None:
    import numpy as np
    import onnxruntime as ort
    import torch
    from common import machine, save
    from judge_throughput import HH, MODEL, N_PAIRS, timed
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from synthloop.judges.preference_data import load_hh_rlhf, render_prompt, render_response
    from synthloop.judges.reward_model import RewardModel

    torch.set_num_threads(2)
    pairs = load_hh_rlhf(HH, split="all")[:N_PAIRS]
    rm = RewardModel.load(MODEL, inference_dtype="bfloat16", threads=2)
    prompts = list(dict.fromkeys(render_prompt(p.prompt) for p in pairs))
    responses = list(dict.fromkeys(render_response(r) for p in pairs for r in (p.chosen, p.rejected)))
    ids = (rm._tokenize(prompts, rm.config.max_prompt_tokens, "end")
           + rm._tokenize(responses, rm.config.max_response_tokens, "start"))
    variants: dict[str, float] = {}
    net = rm._scoring_net()
    with torch.inference_mode():
        variants["torch_bf16"] = N_PAIRS / timed(lambda: rm._embed(net, ids, rm.config.batch_size))
    print(f"torch bf16: {variants['torch_bf16']:.0f} pairs/s", flush=True)

    class Pooled(torch.nn.Module):  # the encoder plus mean pooling, as the reward model embeds
        def __init__(self, encoder: torch.nn.Module):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

    work = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    fp32, int8 = work / "encoder.onnx", work / "encoder-int8.onnx"
    example = (torch.ones(2, 16, dtype=torch.long), torch.ones(2, 16, dtype=torch.long))
    torch.onnx.export(Pooled(rm.net.encoder.float().eval()), example, str(fp32), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                    "embedding": {0: "batch"}})
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))

    def embed(session: ort.InferenceSession, batch_size: int) -> None:
        for start in range(0, len(order), batch_size):
            chunk = [ids[i] for i in order[start:start + batch_size]]
            width = max(map(len, chunk))
            input_ids = np.zeros((len(chunk), width), np.int64)
            mask = np.zeros((len(chunk), width), np.int64)
            for row, tokens in enumerate(chunk):
                input_ids[row, :len(tokens)] = tokens
                mask[row, :len(tokens)] = 1
            session.run(None, {"input_ids": input_ids, "attention_mask": mask})

    for name, path in (("onnx_fp32", fp32), ("onnx_int8_dynamic", int8)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch_size in (32, 128):
            key = f"{name}_batch{batch_size}"
            variants[key] = N_PAIRS / timed(lambda s=session, b=batch_size: embed(s, b))
            print(f"{key}: {variants[key]:.0f} pairs/s", flush=True)
    best_onnx = max(v for k, v in variants.items() if k.startswith("onnx"))
    save("judge_throughput_onnx", {
        "pairs": N_PAIRS, "texts_encoded": len(ids), "mean_tokens": round(sum(map(len, ids)) / len(ids), 1),
        "model": str(MODEL), "onnxruntime": ort.__version__, "torch": torch.__version__, "threads": 2,
        "pairs_per_second": {k: round(v, 1) for k, v in variants.items()},
        "best_onnx_over_torch_bf16": round(best_onnx / variants["torch_bf16"], 3),
        "what": "embedding time only (the scalar head is negligible); torch bf16 is synthloop's default",
        "machine": machine(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)})


if __name__ == "__main__":
    main()
