"""The PyTorch peer of stew_tf's cm_stew stage-2 training step (see stage2_vs_pytorch.py).

Written independently of stew_tf, with PyTorch's own layers: nn.GRU (packed sequences for
clips shorter than the batch), nn.TransformerEncoderLayer (post-norm), nn.Linear, Adam.
"""

import numpy as np
import torch
from torch import nn
from torch.nn.utils import rnn


def sinusoids(time, dim):
  position = torch.arange(time, dtype=torch.float32)[:, None]
  rates = torch.pow(10000.0, -torch.arange(0, dim, 2, dtype=torch.float32) / dim)
  table = torch.zeros(time, dim)
  table[:, 0::2] = torch.sin(position * rates)
  table[:, 1::2] = torch.cos(position * rates)
  return table


class BiGRUStack(nn.Module):
  """Bi-GRU layers, each followed by dropout; padded steps of the outputs are zeros."""

  def __init__(self, dim, units, layers, dropout):
    super().__init__()
    self.grus = nn.ModuleList(nn.GRU(dim if i == 0 else 2 * units, units, batch_first=True,
                                     bidirectional=True) for i in range(layers))
    self.dropout = nn.Dropout(dropout)

  def forward(self, x, lengths):
    full = bool((lengths == x.shape[1]).all())
    for gru in self.grus:
      if full:
        x, _ = gru(x)
      else:
        packed = rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        x, _ = rnn.pad_packed_sequence(gru(packed)[0], batch_first=True,
                                       total_length=x.shape[1])
      x = self.dropout(x)
    return x


class Encoder(nn.Module):
  """z-score → Bi-GRU stack (units = input dim) → Linear(100) → positions → 2 transformers."""

  def __init__(self, dim, layers, mean, std, latent=100, heads=2, ffn=400, dropout=0.3):
    super().__init__()
    self.register_buffer("mean", torch.as_tensor(mean))
    self.register_buffer("std", torch.as_tensor(std))
    self.grus = BiGRUStack(dim, dim, layers, dropout)
    self.project = nn.Linear(2 * dim, latent)
    layer = lambda: nn.TransformerEncoderLayer(latent, heads, ffn, dropout, batch_first=True)
    self.transformers = nn.ModuleList([layer(), layer()])

  def forward(self, x, mask, lengths):
    x = self.grus((x - self.mean) / self.std, lengths)
    x = self.project(x) + sinusoids(x.shape[1], self.project.out_features)
    for transformer in self.transformers:
      x = transformer(x, src_key_padding_mask=~mask)
    return x


def dcca_correlation(strong, weak, r1=1e-3, r2=1e-3):
  """Trace norm of Σ11^-1/2 Σ12 Σ22^-1/2 of [N, d] rows (autograd through eigh and svd)."""
  count = strong.shape[0] - 1
  strong = strong - strong.mean(0, keepdim=True)
  weak = weak - weak.mean(0, keepdim=True)

  def inverse_sqrt(centred, regulariser):
    covariance = centred.T @ centred / count + regulariser * torch.eye(centred.shape[1])
    values, vectors = torch.linalg.eigh(covariance)
    return (vectors * values.clamp_min(1e-9).rsqrt()) @ vectors.T

  t_matrix = inverse_sqrt(strong, r1) @ (strong.T @ weak / count) @ inverse_sqrt(weak, r2)
  return torch.linalg.svdvals(t_matrix).sum()


class Stage2:
  """Weak encoder + classifier + decoder trained against a frozen strong encoder."""

  def __init__(self, arrays, shape, alpha, beta):
    torch.manual_seed(0)
    mask = torch.as_tensor(arrays["mask"])
    self.mask, self.lengths = mask, mask.sum(1)
    self.strong, self.weak = (torch.as_tensor(arrays[s]) for s in ("strong", "weak"))
    self.labels = torch.as_tensor(arrays["labels"])
    moments = {s: (arrays[s][arrays["mask"]].mean(0), arrays[s][arrays["mask"]].std(0) + 1e-6)
               for s in ("strong", "weak")}
    self.teacher = Encoder(shape["strong"], shape["strong_layers"], *moments["strong"]).eval()
    self.teacher.requires_grad_(False)
    self.encoder = Encoder(shape["weak"], shape["weak_layers"], *moments["weak"])
    self.classifier = nn.Sequential(nn.Linear(100, 300), nn.ReLU(), nn.Dropout(0.3),
                                    nn.Linear(300, 1))
    self.decoder = BiGRUStack(100, 250, 2, 0.0)
    self.reconstruct = nn.Linear(500, shape["strong"])
    self.classification = shape["task"] == "classification"
    self.alpha, self.beta = alpha, beta
    trained = [self.encoder, self.classifier, self.decoder, self.reconstruct]
    self.parameters = [p for module in trained for p in module.parameters()]
    self.optimizer = torch.optim.Adam(self.parameters, lr=shape["learning_rate"])

  def step(self):
    mask, lengths = self.mask, self.lengths
    latents = self.encoder(self.weak, mask, lengths)
    scores = self.classifier(latents).squeeze(-1)
    if self.classification:
      prediction = nn.functional.binary_cross_entropy(
          torch.sigmoid(scores[mask]).clamp(1e-7, 1 - 1e-7), self.labels[mask])
    else:
      prediction = nn.functional.mse_loss(torch.tanh(scores[mask]), self.labels[mask])
    with torch.no_grad():
      strong_latents = self.teacher(self.strong, mask, lengths)
    correlation = dcca_correlation(strong_latents[mask], latents[mask])
    target = (self.strong - self.teacher.mean) / self.teacher.std
    reconstruction = self.reconstruct(self.decoder(latents, lengths))
    mae = nn.functional.l1_loss(reconstruction[mask], target[mask])
    total = prediction - self.alpha * correlation + self.beta * mae
    self.optimizer.zero_grad(set_to_none=True)
    total.backward()
    self.optimizer.step()
    return float(total.detach())


def matmul_rate(size):
  rng = np.random.default_rng(0)
  a = torch.as_tensor(rng.normal(size=size[:2]).astype(np.float32))
  b = torch.as_tensor(rng.normal(size=size[1:]).astype(np.float32))
  return lambda: float((a @ b).sum())


def worker(batches, shapes, alpha, beta, threads, matmul_size):
  """{shape: step callable} and a matrix-product callable, on `threads` threads."""
  torch.set_num_threads(threads)
  steps = {f"{name}/stage2": Stage2(arrays, shapes[name], alpha, beta).step
           for name, arrays in batches.items()}
  return steps, matmul_rate(matmul_size)
