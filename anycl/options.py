"""The names of ``anycl.fit``'s options and what each means: the one list that ``fit``, the config file
and the command line read (it imports nothing from anycl, so any module can use it).
"""
from typing import Dict

# fit's options beyond dataset/modality/loss, with their meaning (also the error message's list)
FIT_OPTIONS: Dict[str, str] = {
    "model": "text: a sentence-transformers model path or name (default: packaged all-MiniLM-L6-v2)",
    "encoder": "an nn.Module, or {modality: nn.Module}, used instead of the modality's default encoder",
    "encoder_options": "keyword arguments for the default encoder ({modality: {...}} with several)",
    "adapter_options": "keyword arguments for the adapter ({modality: {...}} with several)",
    "head": "projection head: None (none), 'mlp', or an int output width (MLP head of that width)",
    "columns": "map the convention's names to yours, e.g. {'anchor': 'query', 'positive': 'doc'}",
    "loss_options": "keyword arguments for the loss",
    "temperature": "the loss temperature (for losses that have one)",
    "sampler": "a sampler name or Sampler object (default 'in_batch'; 'group_by_label': >= 2 items per label in a batch)",
    "sampler_options": "keyword arguments for the sampler",
    "batch_size": "pairs per process per step",
    "epochs": "passes over the data",
    "max_steps": "stop after this many optimiser steps (needed for streamed data of unknown length)",
    "lr": "peak learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup_ratio": "fraction of steps for linear warm-up before the decay",
    "lr_schedule": "after warm-up: 'cosine' decay to 0, 'linear' decay to 0, or 'constant'",
    "max_grad_norm": "gradient clipping (None: off)",
    "mixed_precision": "'no', 'bf16' or 'fp16'",
    "gradient_accumulation_steps": "optimiser step every N batches (adds no negatives)",
    "seed": "seed for weights, shuffling, augmentation and dropout",
    "output_dir": "folder for logs and the final model (model/ inside)",
    "overwrite": "allow an existing, non-empty output_dir",
    "eval_dataset": "pairs (retrieval metrics), scored pairs (STS), labelled items (kNN accuracy) or a callable(model)",
    "eval_every": "evaluate every N steps (default: after each epoch)",
    "probe": "True or {k, temperature, linear, test_fraction, batch_size}: kNN (+ linear) probe of a labelled "
             "eval_dataset (or {'train': ..., 'test': ...}) at each evaluation (anycl.probe)",
    "views": "global views per item (>= 2) for multi-view training; default None: pairwise (anycl.multiview)",
    "local_views": "local views per item (image crops of local_size, audio windows of local_seconds); needs a "
                   "multi-view loss (multiview_infonce, dino)",
    "keep_best": "metric name (e.g. 'ndcg@10'), or True for the evaluation's primary metric: keep the weights of "
                 "the best evaluation (needs eval_dataset)",
    "eval_kind": "evaluation kind: None (from the columns: score → sts, pairs → retrieval, labels → knn), 'sts', "
                 "'triplet', 'reranking', 'retrieval', 'knn' or 'classification' (kNN + linear probe)",
    "early_stopping_patience": "stop after this many evaluations without improvement of the watched metric",
    "early_stopping_metric": "the metric early stopping watches (default: keep_best's, else the evaluation's primary)",
    "multi_dataset_sampling": "several data sets ({name: data}): 'proportional' (default) or 'round_robin' batches",
    "callbacks": "objects with on_step_end/on_evaluate/on_train_end, or callables(trainer, step, logs)",
    "num_workers": "DataLoader worker processes for loading/augmenting",
    "on_bad_item": "'raise' (default) or 'skip' unreadable items, reporting the count",
    "log_with": "Accelerate tracker(s) used when output_dir is set (default 'tensorboard')",
    "log_every": "log (trackers, report, collapse watch) every N steps (default: about 100 points per run)",
    "progress": "show the progress bar",
    "cpu": "train on the CPU even when a GPU is present",
    "gradcache_mini_batch": "GradCache: rows embedded at once (full-batch gradients at mini-batch memory; None: off)",
    "collapse_watch": "warn when embeddings collapse (default True; False, or a dict of CollapseWatch options)",
    "checkpoint_every": "save a checkpoint to output_dir/checkpoints every N optimiser steps",
    "resume_from": "'latest' (the newest checkpoint in output_dir, if any) or a checkpoint folder",
    "keep_checkpoints": "complete checkpoints kept (default 2; None: all)",
    "peft": "LoRA through peft: {'r': 16, 'alpha': 32, 'target_modules': [...], 'merge': True} (anycl.lora)",
    "freeze": "towers to keep fixed: a modality, a list, or {modality: 'all'|'encoder'} ('encoder' trains the head)",
    "guide": "guided false-negative masking (GISTEmbed): 'start' (a frozen copy of the starting model), a "
             "sentence-transformers/anycl model path or name, or a ContrastiveModel (default None: off)",
    "guide_margin": "with guide: mask candidates the guide rates above its anchor-positive score minus this (default 0)",
    "guide_margin_strategy": "with guide: 'absolute' (score - margin, default) or 'relative' (score - |score|*margin)",
    "sep": "field separator of a CSV/TSV dataset file (default: ',' / tab, or sniffed when clearly ';', tab or '|')",
    "prompts": "text put before a column's items, keyed by column: {'anchor': 'query: ', 'positive': 'passage: '} "
               "(training, evaluation, mining, encode_query/encode_document; saved with the model)",
    "include_prompt": "text: whether prompt tokens count in mean pooling (default True; False excludes them)",
    "matryoshka_dims": "train prefixes of the embedding too, e.g. [384, 256, 128, 64] (strictly descending; "
                       "encode(truncate_dim=64) then gives a usable 64-d embedding)",
    "matryoshka_weights": "one weight per matryoshka_dims entry (default all 1)",
}
