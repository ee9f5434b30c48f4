"""sentence-transformers' official example `training_stsbenchmark.py`, ported to anycl line by line.

The original (sentence-transformers, examples/sentence_transformer/training/sts/training_stsbenchmark.py) trains a
model on STS-benchmark pairs scored 0..5 (normalised to 0..1) with CoSENTLoss and evaluates it with an
EmbeddingSimilarityEvaluator on the dev split, then on the test split:

    model = SentenceTransformer(model_name)
    train_dataset = load_dataset("sentence-transformers/stsb", split="train")   # sentence1, sentence2, score
    train_loss = losses.CoSENTLoss(model=model)
    dev_evaluator = EmbeddingSimilarityEvaluator(eval_dataset["sentence1"], eval_dataset["sentence2"],
                                                 eval_dataset["score"], main_similarity=SimilarityFunction.COSINE,
                                                 name="sts-dev")
    args = SentenceTransformerTrainingArguments(output_dir=output_dir, num_train_epochs=4,
                                                per_device_train_batch_size=16, warmup_ratio=0.1, ...)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset,
                                         eval_dataset=eval_dataset, loss=train_loss, evaluator=dev_evaluator)
    trainer.train()
    test_evaluator(model)
    model.save_pretrained(f"{output_dir}/final")

Here the same run is one `anycl.fit` call with the same names (ST's loss class name, its trainer arguments, its
evaluator). Offline, with no `--data`, it trains on a small built-in set of scored sentence pairs (the tests run it
so); `--data train.csv --dev dev.csv --test test.csv` (columns sentence1, sentence2, score in 0..5) runs it on the
STS benchmark saved as CSV.

    python examples/st_training_stsbenchmark.py --output-dir out-stsb
"""

from __future__ import annotations

import argparse
import random
from typing import Dict, List

import pandas as pd

import anycl

TOPICS = {
    "a cat": ["a kitten", "a small cat", "a house cat"],
    "a dog": ["a puppy", "a young dog", "a hound"],
    "a car": ["an automobile", "a motor car", "a vehicle"],
    "the sea": ["the ocean", "open water", "the waves"],
    "bread": ["a loaf", "baked dough", "a baguette"],
    "a violin": ["a fiddle", "a string instrument", "a viola"],
}


def built_in_pairs(seed: int, n: int) -> pd.DataFrame:
    """Scored pairs (sentence1, sentence2, score 0..5): close paraphrases score high, other topics low."""
    rng = random.Random(seed)
    names = list(TOPICS)
    rows: List[Dict[str, object]] = []
    for _ in range(n):
        a = rng.choice(names)
        same = rng.random() < 0.5
        b = a if same else rng.choice([x for x in names if x != a])
        left = f"{rng.choice(['there is', 'I see', 'look at'])} {rng.choice([a] + TOPICS[a])}"
        right = f"{rng.choice(['here is', 'we saw', 'a photo of'])} {rng.choice(TOPICS[b])}"
        rows.append(
            {"sentence1": left, "sentence2": right, "score": rng.uniform(3.5, 5) if same else rng.uniform(0, 1)}
        )
    return pd.DataFrame(rows)


def sts_evaluator(frame: pd.DataFrame, name: str):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    return EmbeddingSimilarityEvaluator(
        list(frame["sentence1"]),
        list(frame["sentence2"]),
        [s / 5.0 for s in frame["score"]],  # normalised to 0..1, as the original
        name=name,
        show_progress_bar=False,
    )


def main(argv=None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")  # the packaged copy, offline
    p.add_argument("--data", help="train CSV (sentence1, sentence2, score 0..5); default: built-in pairs")
    p.add_argument("--dev", help="dev CSV")
    p.add_argument("--test", help="test CSV")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=None, help="stop early (the tests use it)")
    p.add_argument("--output-dir", default="output/training_stsbenchmark")
    args = p.parse_args(argv)

    train = pd.read_csv(args.data) if args.data else built_in_pairs(0, 96)
    dev = pd.read_csv(args.dev) if args.dev else built_in_pairs(1, 32)
    test = pd.read_csv(args.test) if args.test else built_in_pairs(2, 32)
    train = train.assign(score=train["score"] / 5.0)  # CoSENT takes the score as given: 0..1, as the original

    dev_evaluator = sts_evaluator(dev, "sts-dev")
    model = anycl.fit(
        train,
        "text",
        model=args.model,
        columns={"anchor": "sentence1", "positive": "sentence2"},  # the score column keeps its name
        loss="CoSENTLoss",  # sentence-transformers' class name: anycl's cosent, with ST's scale 20
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        warmup_ratio=0.1,
        max_steps=args.max_steps,
        evaluator=dev_evaluator,  # run on the model at each evaluation; its scores logged
        eval_steps=max(1, (args.max_steps or 100) // 2),
        output_dir=args.output_dir,
        seed=12,
    )
    test_evaluator = sts_evaluator(test, "sts-test")
    from anycl.evaluation.from_sentence_transformers import SentenceTransformerView

    scores = test_evaluator(SentenceTransformerView(model))
    print({k: round(v, 4) for k, v in scores.items()})
    model.export_sentence_transformers(f"{args.output_dir}/final", overwrite=True)  # ST's save_pretrained folder
    return scores


if __name__ == "__main__":
    main()
