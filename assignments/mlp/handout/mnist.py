"""Train your Net from mlp.py on MNIST, report loss and accuracy per epoch, save it to mnist_agent.pt.

    python mnist.py                      # 5 epochs of Adam at lr 0.001, seed 1
    python mnist.py --lr 0.01 --epochs 3 --seed 7
    python mnist.py --data-dir ~/mnist   # where MNIST/raw/ lives (downloaded there if missing)

The images are read into one tensor once and batched by slicing, so an epoch takes a second or two on
a laptop CPU.
"""
import argparse
import time

import mnistkit  # first: torch's idle threads then sleep instead of spinning
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mlp import Net
from mnistkit.data import MNISTUnavailableError, batches, load_mnist, normalize


def train(model, device, images, labels, optimizer, batch_size, generator, epoch):
    """One pass over the training images; returns (mean loss, accuracy)."""
    model.train()
    total_loss = 0.0
    correct = 0
    order = batches(len(labels), batch_size, shuffle=True, generator=generator)
    for index in tqdm(order, desc=f"epoch {epoch}", unit="batch", leave=False):
        data = images[index].to(device)
        target = labels[index].to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(target)
        correct += (output.argmax(dim=1) == target).sum().item()
    return total_loss / len(labels), correct / len(labels)


@torch.no_grad()
def test(model, device, images, labels, batch_size):
    """Mean loss and accuracy on held-out images, in eval mode (dropout off)."""
    model.eval()
    total_loss = 0.0
    correct = 0
    for index in batches(len(labels), batch_size, shuffle=False):
        data = images[index].to(device)
        target = labels[index].to(device)
        output = model(data)
        total_loss += F.nll_loss(output, target, reduction="sum").item()
        correct += (output.argmax(dim=1) == target).sum().item()
    return total_loss / len(labels), correct / len(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the MNIST MLP of mlp.py")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="input batch size for training (default: 64)")
    parser.add_argument("--test-batch-size", type=int, default=1000, metavar="N",
                        help="input batch size for testing (default: 1000)")
    parser.add_argument("--epochs", type=int, default=5, metavar="N",
                        help="number of epochs to train (default: 5)")
    parser.add_argument("--lr", type=float, default=0.001, metavar="LR",
                        help="learning rate of Adam (default: 0.001)")
    parser.add_argument("--seed", type=int, default=1, metavar="S",
                        help="random seed (default: 1)")
    parser.add_argument("--no-cuda", action="store_true",
                        help="train on the CPU even when CUDA is available (default: False)")
    parser.add_argument("--dry-run", action="store_true",
                        help="train and test on two batches only, to check that everything runs (default: False)")
    parser.add_argument("--data-dir", default=None, metavar="PATH",
                        help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or ./data)")
    parser.add_argument("--save-model", default="mnist_agent.pt", metavar="FILE",
                        help="where to save the trained weights (default: mnist_agent.pt)")
    args = parser.parse_args(argv)

    use_cuda = torch.cuda.is_available() and not args.no_cuda
    device = torch.device("cuda" if use_cuda else "cpu")
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    print(mnistkit.threads_note())
    try:
        train_images, train_labels = load_mnist(train=True, data_dir=args.data_dir)
        test_images, test_labels = load_mnist(train=False, data_dir=args.data_dir)
    except MNISTUnavailableError as err:
        parser.exit(2, f"error: {err}\n")
    train_images = normalize(train_images)
    test_images = normalize(test_images)
    if args.dry_run:  # one short pass over two batches: checks that everything runs
        train_images, train_labels = train_images[: 2 * args.batch_size], train_labels[: 2 * args.batch_size]
        test_images, test_labels = test_images[: args.test_batch_size], test_labels[: args.test_batch_size]
        args.epochs = 1

    model = Net().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = train(model, device, train_images, train_labels, optimizer,
                                      args.batch_size, generator, epoch)
        test_loss, test_acc = test(model, device, test_images, test_labels, args.test_batch_size)
        print(f"epoch {epoch}: train loss {train_loss:.4f}, train accuracy {train_acc:.2%} | "
              f"test loss {test_loss:.4f}, test accuracy {test_acc:.2%} ({time.perf_counter() - start:.1f} s)")
        if train_loss < 0:
            print("warning: the training loss is negative, so your network's outputs are not log-probabilities: "
                  "end forward with F.log_softmax(x, dim=1), not softmax")

    torch.save(model.state_dict(), args.save_model)
    print(f"saved the trained weights to {args.save_model}")


if __name__ == "__main__":
    main()
