"""Figures for the course. Only this package and ``helpers.widgets`` import matplotlib.

``basics``: image grids, the signed heat map every figure shares, learning curves, saving;
``mistakes``: the model's errors; ``explanations``: explanations and their costs;
``robustness``: forward attacks and defences, accuracy against ε; ``evidence``: Grad-CAM,
MOD, promotion and suppression, units and spectra (notebooks 11 and 12); ``fixing``: explanations
that point at a region, accuracies of fixes, rankings of suspected label errors (notebook 13);
``generative``: GAN training, generated digits, counterfactuals (notebooks 15 and 16);
``faithfulness``: every method's map of the same mistakes, mask AUROC, insertion and deletion
(notebook 14).
"""

from helpers.plotting.basics import (
    SIGNED_CMAP,
    draw_signed,
    image_png,
    plot_history,
    save_figure,
    show_images,
    show_samples_per_class,
    signed_map,
    to_image,
)
from helpers.plotting.curves import plot_budget_curve, plot_label_curve
from helpers.plotting.evidence import (
    plot_mod_against_eps,
    plot_shares,
    plot_spectra,
    plot_units,
    show_contributions,
    show_grad_cams,
)
from helpers.plotting.explanations import (
    plot_agreement,
    plot_costs,
    plot_success_by_budget,
    show_edits,
    show_explanation_gallery,
    show_explanations,
    show_side_by_side,
)
from helpers.plotting.faithfulness import (
    plot_insertion_deletion,
    plot_mask_auroc,
    show_method_grid,
    show_smoothing,
)
from helpers.plotting.fixing import plot_accuracies, plot_rankings, show_region_explanations
from helpers.plotting.generative import plot_gan_history, show_class_grid, show_counterfactuals
from helpers.plotting.mistakes import (
    plot_confidence_histograms,
    plot_confusion_matrix,
    plot_per_class_error,
    show_mistakes,
    show_probabilities,
)
from helpers.plotting.robustness import (
    plot_accuracy_against_eps,
    plot_distributions,
    show_adversarial_examples,
)

__all__ = [
    "SIGNED_CMAP",
    "draw_signed",
    "image_png",
    "plot_accuracies",
    "plot_accuracy_against_eps",
    "plot_agreement",
    "plot_budget_curve",
    "plot_confidence_histograms",
    "plot_confusion_matrix",
    "plot_costs",
    "plot_distributions",
    "plot_gan_history",
    "plot_history",
    "plot_insertion_deletion",
    "plot_label_curve",
    "plot_mask_auroc",
    "plot_mod_against_eps",
    "plot_per_class_error",
    "plot_rankings",
    "plot_shares",
    "plot_spectra",
    "plot_success_by_budget",
    "plot_units",
    "save_figure",
    "show_adversarial_examples",
    "show_class_grid",
    "show_contributions",
    "show_counterfactuals",
    "show_edits",
    "show_explanation_gallery",
    "show_explanations",
    "show_grad_cams",
    "show_images",
    "show_method_grid",
    "show_mistakes",
    "show_probabilities",
    "show_region_explanations",
    "show_samples_per_class",
    "show_side_by_side",
    "show_smoothing",
    "signed_map",
    "to_image",
]
