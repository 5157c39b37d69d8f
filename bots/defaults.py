"""The bot's default thresholds: light to import (a model field's default reads them)."""

# Chosen with `python -m bots.calibrate ../shared/datasets/banking77/train.csv`: the lowest
# threshold at which simulated 60-67-entry sites with 10 phrasings answer at most ~5% of held-out
# in-scope train questions wrongly (smaller sites answer wrongly less often at the same value);
# about two thirds of out-of-scope questions are then handed off. Clarifying only pairs that
# are together at least this likely keeps "Did you mean …?" to ~3% of questions.
DEFAULT_THRESHOLD = 0.55
DEFAULT_CLARIFY_THRESHOLD = 0.6
# Answers the visitor may mark "not helpful" before the bot hands over; after the first, the
# visitor is invited to rephrase or ask for a person.
UNHELPFUL_LIMIT = 2
