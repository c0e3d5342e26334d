"""Tokenizers are shared within a process by the content of their files, and freed with their last user."""
from __future__ import annotations

import gc
import json
import shutil

from xnorm.models import Encoder
from xnorm.models.tokenizers import load_tokenizer, shared_count


def test_encoders_of_identical_tokenizer_files_share_one(tmp_path, tiny_model_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)  # a student folder carrying its base's tokenizer, say
    a, b, c = Encoder(str(tiny_model_dir)), Encoder(str(tiny_model_dir)), Encoder(str(copy))
    assert a.tokenizer is b.tokenizer is c.tokenizer
    assert a.encode(["ataxia"]).tolist() == c.encode(["ataxia"]).tolist()


def test_different_tokenizer_files_get_their_own(tmp_path, tiny_model_dir):
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "tokenizer_config.json").read_text())
    (other / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 16}))
    a, b = load_tokenizer(tiny_model_dir), load_tokenizer(other)
    assert a is not b and (a.model_max_length, b.model_max_length) == (64, 16)


def test_a_tokenizer_is_freed_with_its_last_user(tmp_path, tiny_model_dir):
    folder = tmp_path / "alone"
    shutil.copytree(tiny_model_dir, folder)
    special = folder / "special_tokens_map.json"
    special.write_text(special.read_text() + "\n")  # other bytes, same meaning: a key of its own
    gc.collect()
    before = shared_count()
    enc = Encoder(str(folder))
    assert shared_count() == before + 1
    del enc
    gc.collect()
    assert shared_count() == before


def test_threads_may_share_a_tokenizer_across_settings(tiny_model_dir):
    """An encoder (max_length 16) and a reranker's pair encoder (pairs, 48) on one shared tokenizer, in threads:
    without xnorm's call lock, the settings one call sets collide with the other's ("Already borrowed")."""
    import threading

    from xnorm.rerank.pairs import PairEncoder
    from xnorm.terminology import TerminologyBuilder

    enc = Encoder(str(tiny_model_dir), max_length=16)
    b = TerminologyBuilder()
    b.add_concept("HP:1", "Seizure")
    pairs = PairEncoder(load_tokenizer(tiny_model_dir), b.build(), max_length=48)
    assert pairs.tokenizer is enc.tokenizer
    texts = ["patient presented with recurrent seizures and developmental delay"] * 256
    errors: list[str] = []

    def run(work):
        try:
            for _ in range(30):
                work()
        except Exception as e:  # noqa: BLE001 - the failure under test is a RuntimeError from the Rust side
            errors.append(repr(e))

    jobs = [lambda: enc.encode(texts), lambda: pairs.tokenize(texts, texts)] * 2
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
