"""Data sets: the built-in 8x8 handwritten digits (no network needed), loaders for your own
.npz and .csv files, and a seeded train/test split.

    X, y = fastbp.datasets.load_digits()                 # (1797, 64) in [0, 1], labels 0..9
    X, y = fastbp.datasets.load_npz("data.npz")          # arrays "X" and "y"
    X, y = fastbp.datasets.load_csv("data.csv")          # features + last column the label
    X_tr, X_te, y_tr, y_te = fastbp.datasets.train_test_split(X, y, test_fraction=0.2, seed=0)

A file that cannot be read as asked is a ValueError naming the file.
"""
from .loaders import load_csv, load_data, load_digits, load_npz, train_test_split

__all__ = ["load_digits", "load_npz", "load_csv", "load_data", "train_test_split"]
