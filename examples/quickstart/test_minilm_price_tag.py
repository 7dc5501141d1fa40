"""A price tag on real ML tests: MiniLM-L6 inference and fine-tuning on BBC News.

Run with ``pytest --green examples/quickstart``: every marked test gets its time, FLOPs,
energy (measured or labelled estimate), CO2e and peak memory in ``green-report.json``.
"""

from __future__ import annotations

import pytest
import torch

from conftest import MAX_LENGTH, embed

N_TEST = 64


def nearest_centroid_accuracy(train_x, train_y, test_x, test_y, n_classes=5):
    centroids = torch.stack([train_x[train_y == c].mean(0) for c in range(n_classes)])
    predictions = (test_x @ centroids.T).argmax(1)
    return (predictions == test_y).float().mean().item()


@pytest.mark.green_infer(examples=N_TEST)
def test_encode_and_classify(green, encoder, tokenizer, corpus, train_embeddings):
    """Inference: embed 64 held-out articles, classify them by nearest topic centroid."""
    test = corpus.test.take(N_TEST)
    batch = tokenizer(list(test.texts[:32]), padding="max_length", truncation=True,
                      max_length=MAX_LENGTH, return_tensors="pt")
    green.model(encoder, dict(batch), calls=N_TEST // 32)  # counted apart from the timed run
    green.tokens(int(batch["attention_mask"].sum()) * (N_TEST // 32))
    with green.measure():  # time and energy of the inference only
        test_x = embed(encoder, tokenizer, test.texts)
    accuracy = nearest_centroid_accuracy(*train_embeddings, test_x, torch.tensor(test.labels))
    green.metric("accuracy", accuracy)
    assert accuracy > 0.8


class TopicClassifier(torch.nn.Module):
    def __init__(self, encoder, n_classes=5):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(1) / mask.sum(1))


@pytest.mark.green_train(examples=32)
def test_fine_tune_steps(green, tokenizer, corpus):
    """Training: four AdamW steps of a MiniLM topic classifier; the loss must go down."""
    import copy

    from conftest import minilm, transformers

    torch.manual_seed(0)
    encoder = transformers.AutoModel.from_pretrained(minilm.get_model_path())
    model = TopicClassifier(copy.deepcopy(encoder)).train()
    data = corpus.train.take(8)
    batch = dict(tokenizer(list(data.texts), padding="max_length", truncation=True,
                           max_length=64, return_tensors="pt"))
    labels = torch.tensor(data.labels)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = 4
    green.model(model, batch, backward=True, calls=steps,
                loss_fn=lambda logits: loss_fn(logits, labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    losses = []
    with green.measure():
        for _ in range(steps):
            optimizer.zero_grad()
            loss = loss_fn(model(**batch), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    green.examples(steps * len(labels))
    green.metric("final_loss", losses[-1], higher_is_better=False)
    assert losses[-1] < losses[0]


@pytest.mark.green_train
def test_probe_trials(green, train_embeddings, dev_embeddings):
    """Trials: a logistic-regression probe with eight learning-rate/seed settings.

    Each ``green.trial`` costs what was measured since the previous one.
    """
    train_x, train_y = train_embeddings
    dev_x, dev_y = dev_embeddings
    for seed, lr in enumerate([0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]):
        torch.manual_seed(seed)
        probe = torch.nn.Linear(train_x.shape[1], 5)
        optimizer = torch.optim.SGD(probe.parameters(), lr=lr)
        for _ in range(50):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(probe(train_x), train_y).backward()
            optimizer.step()
        accuracy = (probe(dev_x).argmax(1) == dev_y).float().mean().item()
        green.trial(accuracy, config={"lr": lr}, seed=seed)
