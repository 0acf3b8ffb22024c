"""fastbp.sklearn beside scikit-learn's MLP, and a plain PyTorch loop, on scikit-learn's bundled
data sets and two 20,000 x 100 synthetic ones: test scores and fit times.

Each data set is split 75/25 by the seed (stratified for classification), the features
(and a regression target) standardised on the training part. Every library fits the same
network from the same settings: scikit-learn's defaults unless given (hidden (100,), relu,
Adam 1e-3, alpha 1e-4, batches of min(200, n), up to 200 epochs with its tol rule).
PyTorch runs the epochs fastbp ran, with the same batches and torch.optim.Adam
(weight_decay = alpha / batch: scikit-learn's L2 term for full batches, biases included),
the way a user would write it; it is there for the time, its score is its own.

Used by bench/sklearn_parity.py (the table with times) and tests/test_sklearn_parity.py
(scores only).
"""
import time
import warnings

import numpy as np

CLASSIFICATION = ("iris", "wine", "breast_cancer", "digits", "synthetic_classification")
REGRESSION = ("diabetes", "synthetic_regression")
BUNDLED = ("iris", "wine", "breast_cancer", "digits", "diabetes")
ALL = BUNDLED + ("synthetic_classification", "synthetic_regression")
LIBRARIES = ("sklearn", "fastbp", "torch")


def load(name):
    """-> (X, y) of a data set named above."""
    from sklearn import datasets
    if name == "synthetic_classification":
        return datasets.make_classification(20000, 100, n_informative=30, n_classes=5, random_state=0)
    if name == "synthetic_regression":
        return datasets.make_regression(20000, 100, n_informative=30, noise=10.0, random_state=0)
    if name not in BUNDLED:
        raise ValueError(f"unknown data set {name!r}; expected one of {list(ALL)}")
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def split(X, y, regression, seed):
    """75/25 by `seed`, standardised on the training part -> X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed,
                                                        stratify=None if regression else y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if regression:
        mean, std = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    return X_train, X_test, y_train, y_test


def run(library, name, seed, data=None, **params):
    """Fit one library on one split -> dict(score, seconds, epochs). `params` are scikit-learn
    MLP parameters; `epochs` (torch only) is the number to run."""
    regression = name in REGRESSION
    X_train, X_test, y_train, y_test = data if data is not None else split(*load(name), regression, seed)
    if library == "torch":
        return _torch(X_train, X_test, y_train, y_test, regression, seed, **params)
    if library == "sklearn":
        import sklearn.neural_network as module
    elif library == "fastbp":
        import fastbp.sklearn as module
    else:
        raise ValueError(f"unknown library {library!r}; expected one of {list(LIBRARIES)}")
    model = getattr(module, "MLPRegressor" if regression else "MLPClassifier")(random_state=seed, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # ConvergenceWarning at max_iter
        started = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - started
    return dict(score=float(model.score(X_test, y_test)), seconds=seconds, epochs=int(model.n_iter_))


def _torch(X_train, X_test, y_train, y_test, regression, seed, epochs, hidden_layer_sizes=(100,),
           learning_rate_init=1e-3, alpha=1e-4):
    import torch
    from torch import nn
    torch.manual_seed(seed)
    n_out = 1 if regression else int(y_train.max()) + 1
    sizes = [X_train.shape[1], *hidden_layer_sizes, n_out]
    layers = []
    for l in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[l], sizes[l + 1]).double()] + ([nn.ReLU()] if l < len(sizes) - 2 else [])
    model = nn.Sequential(*layers)
    batch = min(200, len(X_train))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate_init, weight_decay=alpha / batch)
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    X = torch.from_numpy(np.ascontiguousarray(X_train))
    y = torch.from_numpy(y_train.reshape(-1, 1) if regression else y_train.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(model(X[rows]), y[rows]).backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(X_test))).numpy()
    if regression:
        from sklearn.metrics import r2_score
        score = r2_score(y_test, out[:, 0])
    else:
        score = float(np.mean(out.argmax(axis=1) == y_test))
    return dict(score=float(score), seconds=seconds, epochs=epochs)
