def test_tiny_model_loads(tiny_model_dir):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir)
    out = model(**tok(["seizure", "short stature"], return_tensors="pt", padding=True))
    assert out.last_hidden_state.shape[-1] == 32
