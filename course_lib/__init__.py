"""course_lib: the small helper library the transformer course stands on.

One module per concept, in lesson order:
    vocab, images        inputs become numbers (lesson 01)
    training             learning is changing connections (02, 08)
    attention            attention by hand, self-attention, multi-head (03-05)
    positions            order and position (06)
    block, language_model, classifier, vision, recurrent   the models (07-12)
    grammar              sentences with ground truth for agreement (05, 08-09)
    evaluation           what a language model learned: held-out loss, agreement, baselines (08)
    analysis, reference  what heads learn (09)
    speed                why transformers are fast: dependency chains, matched models, timings (10)
    digits, probes       real pixels for a vision transformer; reading information out of vectors (11-12)
    plots                the course's pictures
    threads              one CPU thread unless you choose more (set when course_lib is imported)
"""

from .attention import MultiHeadAttention, causal_mask, merge_heads, padding_mask, scaled_dot_product_attention, split_heads
from .block import TransformerBlock, TransformerStack
from .classifier import TransformerClassifier
from .grammar import AgreementGrammar, Sentence, agreement_corpus, agreement_vocabulary
from .images import image_to_patches, make_shapes, sample_photo
from .language_model import TransformerLM
from .positions import LearnedPositions, SinusoidalPositions, sinusoidal_positions
from .recurrent import GRULanguageModel
from .threads import apply_thread_policy
from .training import fit, pick_device, seed_everything
from .vision import VisionTransformer
from .vocab import Vocabulary, pad_batch, tokenize

__version__ = "0.1.0"

apply_thread_policy()

__all__ = [
    "AgreementGrammar", "GRULanguageModel", "LearnedPositions", "MultiHeadAttention", "Sentence",
    "SinusoidalPositions", "TransformerBlock", "TransformerClassifier", "TransformerLM", "TransformerStack",
    "VisionTransformer", "Vocabulary", "agreement_corpus", "agreement_vocabulary", "causal_mask", "fit",
    "image_to_patches", "make_shapes", "merge_heads", "pad_batch", "padding_mask", "pick_device",
    "sample_photo", "scaled_dot_product_attention", "seed_everything", "sinusoidal_positions", "split_heads",
    "tokenize",
]
