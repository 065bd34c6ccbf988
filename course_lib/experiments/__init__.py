"""What the lessons do with the models: their data and their measurements.

    vocab, images         inputs become numbers (lesson 01)
    training              learning is changing connections: fit, the loss, AdamW (lessons 02, 08)
    grammar               sentences with ground truth for agreement (lessons 05, 08-09)
    evaluation            held-out loss, agreement, baselines (lesson 08)
    analysis, head_report what heads learn: capture, scores, silencing (lessons 09, 12)
    reference             the course's reference model, trained once and kept (lessons 08-09)
    cache                 where trained models are kept between kernels
    records               reading the many-seed records in course_lib/data/ (lessons 10, 12)
    speed, recall         why transformers are fast: chains, matched models, timings, races; a far-back recall task (lesson 10)
    digits, probes        real pixels for a vision transformer; reading information out of vectors (11-12)
    text, text_model      real text (torch/nn's source), tokenizers, lesson 13's GPT and its recipe (lesson 13)
    generation            sampling and the key-value cache (lesson 13)
    text_heads            heads in the GPTs on real text: scores against ground truth, silencing, the record (lesson 14)
"""

from course_lib.threads import apply_thread_policy

apply_thread_policy()  # the course's thread count, once (see course_lib.threads)
