"""The models a learner reads, one file each, top to bottom like nanoGPT's ``model.py``:

    attention        scaled_dot_product_attention, masks, MultiHeadAttention          (lessons 03-05)
    positions        sinusoidal and learned positions                                 (lesson 06)
    block            TransformerConfig, the MLP, TransformerBlock, TransformerStack   (lesson 07)
    language_model   LMConfig, TransformerLM: a GPT                                   (lessons 07-09)
    classifier       ClassifierConfig, TransformerClassifier                          (lesson 12)
    vision           ViTConfig, image_to_patches, VisionTransformer                   (lesson 11)
    recurrent        GRUConfig, GRULanguageModel: the sequential baseline             (lesson 10)

Each model takes one config dataclass (or the same settings as keywords). Bad settings and bad input are
refused once, at the public entry, by ``course_lib.validation``'s one policy.
"""

from course_lib.threads import apply_thread_policy

apply_thread_policy()  # the course's thread count, once (see course_lib.threads)
