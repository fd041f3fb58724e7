"""Helpers for the course "Explaining image misclassification with adversarial examples".

One module per concern; notebooks import them qualified, e.g. `from helpers import data`.
"""
