"""The catalogue of seed claims that ``nablab reproduce`` reports on.

Each claim has an id (the key experiments register under), the seed document
and section it comes from, and a short statement of what must be computed.

>>> CLAIMS_BY_ID["autodiff.graph"].seed
'003 Q5'
>>> len(CLAIMS)
34
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    id: str
    seed: str
    statement: str


CLAIMS: tuple[Claim, ...] = (
    Claim("optim.sgd-min-norm", "000, 002 §1.1.1",
          "Started at zero on an underdetermined least-squares problem (d > n), SGD ends at the "
          "minimum-norm solution X^T (X X^T)^-1 t, and every iterate stays in the row space of X."),
    Claim("optim.momentum-min-norm", "000 §1.1.2",
          "The same holds for SGD with momentum written in delta form "
          "(delta = -eta g + alpha delta; w += delta)."),
    Claim("optim.adagrad-not-min-norm", "000 §1.2.1",
          "Adagrad's limit compared with the minimum-norm point for x1 = [1, 1], t = 3 (they "
          "coincide, and why) and for x1 = [1, 2], t = 3 (they do not)."),
    Claim("optim.adaptive-not-min-norm", "000 §1.2.2",
          "RMSprop and Adam on random underdetermined problems: how far their limits land from "
          "the minimum-norm solution."),
    Claim("hyper.graph-two-steps", "000 §2.1.1",
          "The computation graph of the loss after two gradient steps, as a function of eta, w0, "
          "X and t, drawn by nablab's tracer."),
    Claim("hyper.memory-vs-steps", "000, 002 §2.1.2",
          "Peak memory of dL_t/d eta against the number of unrolled steps t: linear in t for "
          "reverse mode, constant for forward mode."),
    Claim("hyper.long-horizon", "000, 002 §2.1.3",
          "Over long horizons, memory grows and hypergradients blow up or die out with t."),
    Claim("hyper.one-step-loss", "000, 002 §2.2.1-2.2.3",
          "The one-step loss L1(eta) in closed form with a = X w0 - t, its non-negative second "
          "derivative, and the closed-form eta*, each checked by autodiff and a numerical search."),
    Claim("hyper.one-step-2d", "000 §2.2.4",
          "For X = [1 1], t = [3], w0 = 0: eta*, the resulting w1, and how w1 sits relative to "
          "the minimum-norm solution."),
    Claim("hyper.t-step-loss", "000 §2.3.1-2.3.2",
          "L_t(eta) in closed form through (I - 2 eta/n X X^T)^t a0, and whether it is convex in "
          "eta in general, tested on random problems."),
    Claim("hyper.t-step-2d", "000 §2.3.3",
          "The optimal step size eta* for the two-dimensional example after t steps."),
    Claim("cnn.filter-output", "000, 002 §3.1",
          "The zero-padded cross-correlation of the 5x5 input with the 3x3 Laplacian-like filter, "
          "and what the filter responds to."),
    Claim("arch.convnet-size", "000, 002 §3.2",
          "Parameters (with biases), neurons and input connections per layer of the 112x112x3 "
          "VGG-style network; the two answer sets differ and the computation settles which is right."),
    Claim("arch.rf-factors", "000 §3.3",
          "How depth, kernel size, stride, dilation and pooling change a receptive field, each "
          "shown by a sweep."),
    Claim("theory.lsq-gradients", "001 P1",
          "The gradients of the per-example and the full least-squares losses agree with "
          "nablab's autodiff on random data."),
    Claim("theory.gd-1d-divergence", "001 P2",
          "Gradient descent on theta^2/2 diverges exactly when alpha > 2; alpha = 2 oscillates."),
    Claim("theory.gd-threshold", "001 P3",
          "Gradient descent on least squares diverges from almost every start when "
          "alpha > 2/rho(X^T X) and converges below it; measured as the diverging fraction over alpha."),
    Claim("theory.wide-minima", "001 P4",
          "On the function with one sharp and one wide minimum, from random starts in [-5, 20]: "
          "alpha = 0.01 finds either, 0.3 finds the wide one, 4 mostly fails to converge."),
    Claim("linop.conv1d-gd", "001 P5",
          "A matrix-free 1-D convolution with @ and .T runs the seed's 100-step gradient loop on "
          "Huber(Ax - b) + lam/2 ||x||^2 unchanged and matches the dense computation."),
    Claim("theory.gd-proximal", "003 Q1",
          "Minimising the linearised loss plus lambda/2 ||w - w_t||^2 gives w_t - grad/lambda, "
          "that is a gradient step with eta = 1/lambda."),
    Claim("theory.regret-lemma", "003 Q2",
          "sum <w_t - w*, v_t> <= ||w*||^2/(2 eta) + eta/2 sum ||v_t||^2 holds on random "
          "sequences, and how tight it gets."),
    Claim("theory.gd-rate", "003 Q3",
          "Averaged gradient descent with eta = B/(rho sqrt T) on a convex rho-Lipschitz function "
          "stays within B rho / sqrt(T) of the optimum; the log-log slope is close to -1/2."),
    Claim("theory.sgd-not-monotone", "003 Q4",
          "For f = f1 + f2 built from two logistic terms, a stochastic step on one term can "
          "increase f; a concrete case is computed."),
    Claim("autodiff.graph", "003 Q5",
          "The computation graph of f(x, y) = (x + y)(y + 1), drawn with node values and gradients."),
    Claim("autodiff.jacobian-three-ways", "003 Q5(a-d)",
          "At (1, -1), the value and Jacobian of f1 = exp(exp(w1) + exp(2 w2)) + "
          "sigmoid(exp(w1) + exp(2 w2)), f2 = w1 w2 + max(w1, w2), by forward differences "
          "(step 0.01), forward mode and reverse mode."),
    Claim("train.cifar10", "003 Q8",
          "A softmax classifier, a two-layer MLP and a small ConvNet built from nablab layers, "
          "trained on CIFAR-10 beside the same models in PyTorch; on MNIST-1D when CIFAR-10 is absent."),
    Claim("cnn.conv-output-shape", "004 Q1(a)",
          "Output shapes for a batch of 32 28x28 inputs and 128 filters with kernel 3, stride 1, "
          "no padding, and with kernel 4, stride 2, padding 1."),
    Claim("cnn.filter-design", "004 Q1(b-d)",
          "What each of the three given filters does, shown on test images."),
    Claim("arch.shape-propagation", "004 Q1(e-f)",
          "Layer-by-layer shapes of an encoder-decoder starting at [10, 1, 32, 32] (convolution, "
          "pooling, transposed convolution) and of a skip connection by channel concatenation."),
    Claim("arch.rf-recursion", "004 Q1(h)",
          "Receptive fields from the layer recursion for three 3x3 stride-2 layers: 1, 3, 7, 15."),
    Claim("train.diagnostics", "004 Q2",
          "A too-large learning rate as it shows in the loss curve, and what a loop that never "
          "zeroes gradients does, in nablab and in PyTorch."),
    Claim("data.one-hot", "004 Q4",
          "The one-hot encoding of the sentence \"This exam is a midterm exam\"."),
    Claim("optim.preconditioned-sgd", "004 Q7",
          "Preconditioned SGD theta -= alpha M grad on [1, 0.1, 0.01] theta = 1 from zero: the "
          "limits for M = I and for diagonal preconditioners, against the seed's answers."),
    Claim("optim.nonuniform-sgd", "004 Q7",
          "SGD with non-uniform row sampling converges to the minimum-norm solution, and the "
          "Lyapunov function J shrinks in expectation by at least (1 - rho) per step."),
)

CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}


class UnknownClaimError(ValueError):
    """A claim id that is not in the catalogue; the message lists the valid ones."""

    def __init__(self, ids):
        self.ids = list(ids)
        names = ", ".join(repr(i) for i in self.ids)
        super().__init__(f"unknown claim id{'s' if len(self.ids) > 1 else ''} {names}; "
                         f"valid ids: {', '.join(CLAIMS_BY_ID)}")


def get_claim(claim_id: str) -> Claim:
    """Look up a claim, with an error that lists the valid ids.

    >>> get_claim("data.one-hot").seed
    '004 Q4'
    """
    if claim_id not in CLAIMS_BY_ID:
        raise UnknownClaimError([claim_id])
    return CLAIMS_BY_ID[claim_id]
