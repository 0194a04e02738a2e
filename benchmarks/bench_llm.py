"""Time LLM attribution: batched rows and the shared-prefix KV cache against one prompt per call (Captum's way).

A randomly initialised GPT-2 (``transformers``; default 4 layers, 256-dim, 8000 tokens; ``--size small`` for GPT-2
small: 12 layers, 768-dim, 50257 tokens) explains a 16-token target after a 256-token prompt: a fixed 192-token
context followed by 16 four-token segments (a ``TextTemplateInput``), the usual shape of a retrieval or
instruction prompt. Methods: ``FeatureAblation`` (17 rows) and ``KernelShap`` (200 samples). Cases: batched with the
cache (default), batched without it, one row per model call without it. Interleaved repeats; medians of the
per-repeat ratios. On CUDA wall time (synchronised), else process CPU time.

    python benchmarks/bench_llm.py [--device cpu|cuda] [--size tiny|small] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


class IdTokenizer:
    """Texts are space-separated token ids; enough of a Hugging Face tokenizer for the attribution classes."""

    pad_token_id = 0

    def encode(self, text, return_tensors=None, add_special_tokens=True):
        ids = [int(w) for w in text.split()]
        return torch.tensor([ids]) if return_tensors == "pt" else ids

    def __call__(self, texts, add_special_tokens=True, return_offsets_mapping=False):
        if return_offsets_mapping:
            raise TypeError("no offsets")
        return {"input_ids": [self.encode(t) for t in texts] if isinstance(texts, list) else self.encode(texts)}

    def decode(self, ids, **kwargs):
        return " ".join(str(int(i)) for i in ids)

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]

    def convert_tokens_to_ids(self, tokens):
        return [int(t) for t in tokens]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=["tiny", "small"], default="tiny")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from pellucid.attr import FeatureAblation, KernelShap, LLMAttribution, TextTemplateInput

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    dev = torch.device(args.device)
    vocab, dim, layers, heads = (8000, 256, 4, 4) if args.size == "tiny" else (50257, 768, 12, 12)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=512, n_embd=dim, n_layer=layers, n_head=heads,
                                       bos_token_id=1, eos_token_id=2, pad_token_id=0)).eval().to(dev)
    g = torch.Generator().manual_seed(1)
    words = lambda n: " ".join(str(int(i)) for i in torch.randint(100, vocab - 1, (n,), generator=g))  # noqa: E731
    inp = TextTemplateInput(words(192) + " {}" * 16, [words(4) for _ in range(16)])
    target = torch.randint(100, vocab - 1, (16,), generator=g)
    tok = IdTokenizer()
    cuda = dev.type == "cuda"

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    cases = {"batched + cache": {}, "batched, no cache": {"use_cached_outputs": False},
             "1 row per call, no cache": {"use_cached_outputs": False, "batch_size": 1}}
    for name, method, extra in [("FeatureAblation", FeatureAblation, {}),
                                ("KernelShap (200 samples)", KernelShap, {"n_samples": 200, "seed": 0})]:
        la = LLMAttribution(method(model), tok)
        la.attribute(inp, target=target, **extra)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.repeats):
            for k, kw in cases.items():
                t0 = clock()
                la.attribute(inp, target=target, **extra, **kw)
                times[k].append(clock() - t0)
        base = times["1 row per call, no cache"]
        print(f"{name} on {args.device}, {args.size} GPT-2, 256-token prompt, 16 target tokens")
        for k in cases:
            ratio = statistics.median(b / t for b, t in zip(base, times[k]))
            print(f"  {k:26s} {statistics.median(times[k]) * 1e3:9.1f} ms   {ratio:5.2f}x faster than 1 row per call")


if __name__ == "__main__":
    main()
