"""fastbp explain: backpropagation step by step on a tiny network, as a real computation.

By default the 2-2-2 worked example of docs/design.md: X = [2, 3], W1 = [[.1, .2], [.3, .4]],
b1 = [.5, .6], W2 = [[.5, .6], [.7, .8]], b2 = 0, sigmoid hidden layer, identity output,
squared error (sum) against the target [1, 0]. Every value is computed by fastbp's kernels
from the ones before it (A1 = sigmoid(Z1) exactly), and the textbook's assumed values
(A1 = [.9, .95], delta2 = [.2, -.3], delta1 = [-.01, -.02]) are shown beside them.
"""
import numpy as np

from . import options

HELP = "walk backpropagation step by step on a tiny network (default: the 2-2-2 worked example)"

EXAMPLE = dict(X=[[2.0, 3.0]], W=[[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.6], [0.7, 0.8]]],
               b=[[0.5, 0.6], [0.0, 0.0]], y=[[1.0, 0.0]])
# the textbook's assumed (rounded or made-up) intermediate values
TEXTBOOK = dict(A1=[[0.9, 0.95]], delta2=[[0.2, -0.3]], delta1=[[-0.01, -0.02]],
                dW2=[[0.18, -0.27], [0.19, -0.285]], dW1=[[-0.02, -0.04], [-0.03, -0.06]])


def add_arguments(parser):
    parser.add_argument("--network", metavar="PATH", help="a saved fastbp network (net.save / fastbp train --save)")
    parser.add_argument("--layers", metavar="N,N,...", help="layer sizes of a random network, e.g. 3,4,2")
    from fastbp import activations
    names = ", ".join(activations.NAMES)
    parser.add_argument("--activation", default="sigmoid", choices=activations.NAMES, metavar="NAME",
                        help=f"hidden activation of --layers: {names} (default sigmoid)")
    parser.add_argument("--output-activation", default="identity", choices=activations.NAMES, metavar="NAME",
                        help="output activation of --layers (default identity)")
    parser.add_argument("--loss", default="mse", choices=("mse", "cross_entropy", "bce"), help="loss of --layers")
    parser.add_argument("--seed", type=options.non_negative_int, default=0, help="seeds the random weights of --layers")
    parser.add_argument("--input", metavar="X,X,...", help="one input row (default: the example's, or random)")
    parser.add_argument("--target", metavar="Y,Y,...", help="its target: a class label for cross_entropy")
    parser.add_argument("--backend", default="auto", help="the backend whose kernels compute (default auto)")


def run(args):
    import fastbp as fb
    from fastbp import checkpoint

    if args.network and args.layers:
        raise ValueError("give --network or --layers, not both")
    default = not (args.network or args.layers)
    if default:
        net = fb.MLP([2, 2, 2], activation="sigmoid", output_activation="identity", loss="mse",
                     reduction="sum", dtype=np.float64, backend=args.backend)
        net.set_params([np.array(w) for w in EXAMPLE["W"]], [np.array(b) for b in EXAMPLE["b"]])
    else:
        if args.network:
            options.input_file(args.network, "--network")
            saved = fb.MLP.from_checkpoint(checkpoint.read(args.network), args.backend)
            net = fb.MLP(saved.layer_sizes, activation=saved.activation, output_activation=saved.output_activation,
                         loss=saved.loss, reduction=saved.reduction, dtype=np.float64, backend=args.backend)
            net.set_params(saved.weights, saved.biases)
        else:
            net = fb.MLP(options.layer_list(args.layers, "--layers", at_least=2), activation=args.activation,
                         output_activation=args.output_activation, loss=args.loss, reduction="sum",
                         dtype=np.float64, backend=args.backend, seed=args.seed)
    X, y = _example_data(net, args, default)
    return Walkthrough(net, X, y, textbook=default and args.input is None and args.target is None).run()


def _numbers(text, name, kind=float):
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers; got {text!r}") from None


def _example_data(net, args, default):
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    rng = np.random.default_rng(args.seed)
    if args.input is not None:
        X = np.array([_numbers(args.input, "--input")])
    elif default:
        X = np.array(EXAMPLE["X"])
    else:
        X = np.round(rng.normal(size=(1, n_in)), 2)
    if X.shape[1] != n_in:
        raise ValueError(f"--input must have {n_in} values for this network; got {X.shape[1]}")
    if args.target is not None:
        y = np.array(_numbers(args.target, "--target"))
        y = y.astype(np.intp) if net.loss == "cross_entropy" else y[None, :]
    elif default:
        y = np.array(EXAMPLE["y"])
    elif net.loss == "cross_entropy":
        y = np.array([0])
    else:
        y = np.round(rng.uniform(size=(1, n_out)), 2)
    return X, y


SPELLED_OUT = 32       # a layer's weighted sums are written out in full up to this many weights
SUMMARIZED = 24        # arrays with more entries are printed as their corners (NumPy's "...")


def fmt(a):
    return np.array2string(np.asarray(a), precision=6, suppress_small=True, floatmode="maxprec",
                           separator=", ", threshold=SUMMARIZED, edgeitems=2).replace("\n", "")


class Walkthrough:
    """Forward, loss, output delta, then per layer (last first) dW, db and the earlier delta,
    each printed with the rule that made it. The numbers come from fastbp.kernels."""

    def __init__(self, net, X, y, textbook=False):
        from fastbp import activations, losses
        from fastbp._kernels import get_ops
        self.net, self.textbook = net, textbook
        self.ops = get_ops(net.backend)
        self.X, self.y = net._inputs(X, y)
        self.W, self.b = net.weights, net.biases
        self.acts = [activations.NAMES[c] for c in net.arch.activations]
        self.loss_code, self.reduction_code = net.arch.loss, net.arch.reduction
        self.losses = losses

    def run(self):
        from fastbp import kernels
        net, L = self.net, self.net.arch.n_layers
        print(f"network {list(net.layer_sizes)}: activations {self.acts}, loss {net.loss} ({net.reduction}); "
              f"float64 on backend {net.backend!r}")
        print("convention: rows are samples; Z[l] = A[l-1] @ W[l] + b[l], A[l] = f_l(Z[l]), A[0] = X")
        print(f"\nX = A0 = {fmt(self.X)}    target y = {fmt(self.y)}")
        for l in range(L):
            print(f"W{l + 1} = {fmt(self.W[l])}    b{l + 1} = {fmt(self.b[l])}")

        print("\n1. forward pass")
        Zs, As = [], [self.X]
        for l in range(L):
            Z, A = kernels.linear_forward(As[-1], self.W[l], self.b[l], self.acts[l], backend=net.backend)
            Zs.append(Z)
            As.append(A)
            print(f"   Z{l + 1} = A{l} @ W{l + 1} + b{l + 1}: {self._sums(As[-2][0], self.W[l], self.b[l])}")
            print(f"      = {fmt(Z)}")
            print(f"   A{l + 1} = {self.acts[l]}(Z{l + 1}) = {fmt(A)}")
            if self.textbook and l == 0:
                print(f"      the textbook assumes A1 = {fmt(TEXTBOOK['A1'])}, rounded; the real sigmoid(Z1) is "
                      f"{fmt(A)} (sigmoid(1.6) = {A[0, 0]:.4f}, not 0.9; sigmoid(2.2) = {A[0, 1]:.4f}, not 0.95)")

        print("\n2. loss and the output delta")
        loss, d_out = self.ops.loss_and_output_grad(As[-1], self.y, self.loss_code, self.reduction_code)
        print(f"   loss = {self._loss_formula()} = {loss:.6g}")
        print(f"   dLoss/dA{L} = {self._output_grad_formula()} = {fmt(d_out)}")
        delta = kernels.activation_backward(np.ascontiguousarray(d_out), Zs[-1], As[-1], self.acts[-1],
                                            backend=net.backend)
        print(f"   delta{L} = dLoss/dZ{L} = dLoss/dA{L} * {self.acts[-1]}'(Z{L}) = {fmt(delta)}")
        if self.textbook:
            print(f"      the textbook assumes delta2 = {fmt(TEXTBOOK['delta2'])} instead of computing it "
                  f"from a target; here it follows from y = {fmt(self.y)}")

        print("\n3. backward pass, last layer first")
        grads = {}
        for l in reversed(range(L)):
            dW, db = kernels.weight_gradient(As[l], delta, backend=net.backend)
            grads[l] = (dW, db)
            print(f"   dW{l + 1} = A{l}.T @ delta{l + 1} (outer product) = {fmt(dW)}")
            print(f"   db{l + 1} = delta{l + 1} summed over the batch = {fmt(db)}")
            if self.textbook:
                self._textbook_weight_gradient(l, As)
            if l > 0:
                local = kernels.activation_backward(np.ones_like(Zs[l - 1]), Zs[l - 1], As[l], self.acts[l - 1],
                                                    backend=net.backend)
                new = kernels.delta_propagate(delta, self.W[l], Zs[l - 1], As[l], self.acts[l - 1],
                                              backend=net.backend)
                print(f"   local gradient {self.acts[l - 1]}'(Z{l}) = {fmt(local)}")
                print(f"   delta{l} = (delta{l + 1} @ W{l + 1}.T) * {self.acts[l - 1]}'(Z{l}) = "
                      f"{fmt(delta @ self.W[l].T)} * {fmt(local)} = {fmt(new)}")
                if self.textbook and l == 1:
                    self._textbook_delta1(delta, local)
                delta = new

        print("\n4. check")
        loss_net, dW_net, db_net = net.loss_and_grad(self.X, self.y)
        worst = max(float(np.max(np.abs(grads[l][0] - dW_net[l]))) for l in range(L))
        worst = max(worst, *(float(np.max(np.abs(grads[l][1] - db_net[l]))) for l in range(L)))
        print(f"   net.loss_and_grad gives loss {loss_net:.6g} and the same gradients (max difference {worst:.1e})")
        import fastbp as fb
        report = fb.gradcheck(net, self.X, self.y)
        print(f"   finite differences agree: max relative error {report.max_rel:.1e} "
              f"({'passed' if report.passed else 'FAILED'})")
        return 0 if report.passed else 1

    def _sums(self, a, W, b):
        """Each unit's weighted sum spelled out; for a large layer, the first units' first
        terms only (the output of a big network stays a page, not megabytes)."""
        n_in, n_out = W.shape
        units, terms = (n_out, n_in) if n_in * n_out <= SPELLED_OUT else (min(n_out, 2), min(n_in, 3))
        sums = []
        for j in range(units):
            shown = " + ".join(f"{a[i]:g}*{W[i, j]:g}" for i in range(terms))
            sums.append(shown + (f" + ... ({n_in} products)" if terms < n_in else "") + f" + {b[j]:g}")
        return " ; ".join(sums) + (f" ; ... ({n_out} units)" if units < n_out else "")

    def _loss_formula(self):
        agg = "sum" if self.reduction_code == self.losses.SUM else "mean"
        return {self.losses.MSE: f"{agg}((A - y)^2)",
                self.losses.CROSS_ENTROPY: f"{agg} over rows of -log softmax(A)[label]",
                self.losses.BCE: f"{agg}(-y log sigmoid(A) - (1 - y) log(1 - sigmoid(A)))"}[self.loss_code]

    def _output_grad_formula(self):
        scale = "" if self.reduction_code == self.losses.SUM else " / count"
        return {self.losses.MSE: f"2 (A - y){scale}",
                self.losses.CROSS_ENTROPY: f"(softmax(A) - onehot(y)){scale}",
                self.losses.BCE: f"(sigmoid(A) - y){scale}"}[self.loss_code]

    def _textbook_weight_gradient(self, l, As):
        from fastbp import kernels
        if l == 1:
            dW, _ = kernels.weight_gradient(np.array(TEXTBOOK["A1"]), np.array(TEXTBOOK["delta2"]),
                                            backend=self.net.backend)
            print(f"      the textbook's dW2 = {fmt(TEXTBOOK['dW2'])} is the same rule applied to its assumed "
                  f"A1 and delta2: A1.T @ delta2 = {fmt(dW)}")
        else:
            dW, _ = kernels.weight_gradient(As[0], np.array(TEXTBOOK["delta1"]), backend=self.net.backend)
            print(f"      the textbook's dW1 = {fmt(TEXTBOOK['dW1'])} is X.T @ its assumed delta1 "
                  f"{fmt(TEXTBOOK['delta1'])} = {fmt(dW)}")

    def _textbook_delta1(self, delta2, local):
        A1 = np.array(TEXTBOOK["A1"])
        from_assumed = (np.array(TEXTBOOK["delta2"]) @ self.W[1].T) * A1 * (1 - A1)
        with_real_A1 = (np.array(TEXTBOOK["delta2"]) @ self.W[1].T) * local
        print(f"      the textbook assumes delta1 = {fmt(TEXTBOOK['delta1'])}; the rule gives {fmt(from_assumed)} from "
              f"its own assumed delta2 and A1, {fmt(with_real_A1)} from its delta2 with the real A1, and "
              f"{fmt(delta2 @ self.W[1].T * local)} from the real values")
