"""Train one configuration of your build_mlp on MNIST and append its results to results.jsonl.

    python train.py                                   # ReLU, 2 x 50 units, Adam at lr 0.001, 1 epoch, seed 0
    python train.py --activation tanh --lr 0.003
    python train.py --depth 3 --width 100 --epochs 5 --seed 1
    python train.py --optimizer sgd --lr 0.1 --scheduler cosine --epochs 4
    python train.py --init xavier --batchnorm --dropout 0.3
    python train.py --data-dir ~/mnist                # where MNIST/raw/ lives (downloaded there if missing)

500 training images (always the same ones) are held out for validation; the network trains on the other
59,500 (or on the first --train-size of them), is validated after every epoch and tested once at the end on
the 10,000 test images. The numbers depend only on the configuration and the seed: run it twice and you
get the same row twice (on the same machine).
"""
import argparse

from runs import OPTIMIZERS, RESULTS_FILE, SCHEDULERS, RunConfig, append_row, load_data, train_run

ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "leakyrelu")
INIT_NAMES = ("default", "normal", "xavier", "he")


def make_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    parser = argparse.ArgumentParser(description="Train one MLP configuration and append its row to the results file")
    parser.add_argument("--activation", choices=ACTIVATION_NAMES, default=d.activation,
                        help=f"activation after every hidden layer (default: {d.activation})")
    parser.add_argument("--depth", type=int, default=d.depth, metavar="N",
                        help=f"number of hidden layers (default: {d.depth})")
    parser.add_argument("--width", type=int, default=d.width, metavar="N",
                        help=f"units in every hidden layer (default: {d.width})")
    parser.add_argument("--batchnorm", action="store_true",
                        help="BatchNorm1d between each hidden layer and its activation (default: False)")
    parser.add_argument("--dropout", type=float, default=d.dropout, metavar="P",
                        help=f"dropout probability after each hidden activation, 0 for none (default: {d.dropout})")
    parser.add_argument("--init", choices=INIT_NAMES, default=d.init,
                        help=f"weight initialisation of the linear layers (default: {d.init})")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                        help=f"optimiser (default: {d.optimizer})")
    parser.add_argument("--lr", type=float, default=d.lr, metavar="LR",
                        help=f"initial learning rate (default: {d.lr})")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler,
                        help=f"learning-rate schedule over the whole run (default: {d.scheduler})")
    parser.add_argument("--epochs", type=int, default=d.epochs, metavar="N",
                        help=f"passes over the training images (default: {d.epochs})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N",
                        help=f"images per optimisation step (default: {d.batch_size})")
    parser.add_argument("--train-size", type=int, default=d.train_size, metavar="N",
                        help=f"train on the first N training images only, 0 for all (default: {d.train_size})")
    parser.add_argument("--val-size", type=int, default=d.val_size, metavar="N",
                        help=f"training images held out for validation (default: {d.val_size})")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed: weights, dropout and batch order (default: 0)")
    parser.add_argument("--results", default=RESULTS_FILE, metavar="FILE",
                        help=f"results file the run's row is appended to (default: {RESULTS_FILE})")
    parser.add_argument("--no-save", action="store_true",
                        help="print the results but do not append them to the results file (default: False)")
    parser.add_argument("--data-dir", default=None, metavar="PATH",
                        help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    return parser


def config_from_args(args) -> RunConfig:
    return RunConfig(
        activation=args.activation, depth=args.depth, width=args.width, batchnorm=args.batchnorm,
        dropout=args.dropout, init=args.init, optimizer=args.optimizer, lr=args.lr, scheduler=args.scheduler,
        epochs=args.epochs, batch_size=args.batch_size, train_size=args.train_size, val_size=args.val_size,
    )


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args)
    try:
        config.validate()
    except ValueError as err:
        parser.error(str(err))
    data = load_data(args.data_dir)
    try:
        row = train_run(config, args.seed, *data, progress=True)
    except ValueError as err:  # e.g. build_mlp rejecting --depth 0 or --dropout 1
        parser.error(f"{type(err).__name__}: {err}")
    except NotImplementedError as err:
        raise SystemExit(f"analysis.py is not finished yet: {err}") from None
    for epoch in row["history"]:
        print(f"epoch {epoch['epoch']}: lr {epoch['lr']:.3g} | train loss {epoch['train_loss']:.4f}, "
              f"accuracy {epoch['train_acc']:.2%} | validation loss {epoch['val_loss']:.4f}, "
              f"accuracy {epoch['val_acc']:.2%}")
    print(f"test loss {row['test_loss']:.4f}, test accuracy {row['test_acc']:.2%} "
          f"({row['parameters']:,} parameters, {row['seconds']:.1f} s)")
    if not args.no_save:
        append_row(row, args.results)
        print(f"appended the run to {args.results}")


if __name__ == "__main__":
    main()
