"""Speech networks written by hand: a Conformer encoder over log-mel frames (the paper's
macaron feed-forwards, nn.MultiheadAttention, the GLU / depthwise-conv module), the keyword
spotting M5 of torchaudio's speech-command tutorial (1-D convs over the raw waveform) and a
TC-ResNet (temporal convolutions over MFCC channels, Choi et al. 2019)."""

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.handwritten import Network, floats

# --- Conformer (ported from session 13's conformer.py) ---

class FF(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.SiLU(),
                                 nn.Linear(4 * d, d))
    def forward(self, x):
        return self.net(x)

class ConvModule(nn.Module):
    def __init__(self, d, k=7):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, k, padding=k // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)
    def forward(self, x):                      # (B, T, D)
        y = self.norm(x).transpose(1, 2)       # (B, D, T)
        y = F.glu(self.pw1(y), dim=1)
        y = F.silu(self.bn(self.dw(y)))
        return self.pw2(y).transpose(1, 2)

class MHSA(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, h, batch_first=True)
    def forward(self, x):
        y = self.norm(x)
        return self.attn(y, y, y, need_weights=False)[0]

class Conformer(nn.Module):
    def __init__(self, d=48, h=4):
        super().__init__()
        self.ff1, self.mhsa, self.conv, self.ff2 = FF(d), MHSA(d, h), ConvModule(d), FF(d)
        self.out = nn.LayerNorm(d)
    def forward(self, x):
        x = x + 0.5 * self.ff1(x)
        x = x + self.mhsa(x)
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.out(x)

class ConformerModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.sub = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1),
                                 nn.ReLU())
        self.proj = nn.Linear(8 * 10, 48)
        self.blocks = nn.Sequential(Conformer(), Conformer())
        self.head = nn.Linear(48, 12)
    def forward(self, mel):                    # (B, 1, T=40, F=40)
        x = self.sub(mel)                      # (B, 8, 10, 10)
        b, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        return self.head(self.blocks(x).mean(1))

def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
    return model.eval()

def conformer():
    torch.manual_seed(0)
    return _randomize_bn(ConformerModel())


# --- M5 keyword spotting (torchaudio's speech_command_classification_with_torchaudio tutorial) ---

class M5(nn.Module):
    def __init__(self, n_input=1, n_output=35, stride=16, n_channel=32):
        super().__init__()
        self.conv1 = nn.Conv1d(n_input, n_channel, kernel_size=80, stride=stride)
        self.bn1 = nn.BatchNorm1d(n_channel)
        self.pool1 = nn.MaxPool1d(4)
        self.conv2 = nn.Conv1d(n_channel, n_channel, kernel_size=3)
        self.bn2 = nn.BatchNorm1d(n_channel)
        self.pool2 = nn.MaxPool1d(4)
        self.conv3 = nn.Conv1d(n_channel, 2 * n_channel, kernel_size=3)
        self.bn3 = nn.BatchNorm1d(2 * n_channel)
        self.pool3 = nn.MaxPool1d(4)
        self.conv4 = nn.Conv1d(2 * n_channel, 2 * n_channel, kernel_size=3)
        self.bn4 = nn.BatchNorm1d(2 * n_channel)
        self.pool4 = nn.MaxPool1d(4)
        self.fc1 = nn.Linear(2 * n_channel, n_output)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(self.bn1(x))
        x = self.pool1(x)
        x = self.conv2(x)
        x = F.relu(self.bn2(x))
        x = self.pool2(x)
        x = self.conv3(x)
        x = F.relu(self.bn3(x))
        x = self.pool3(x)
        x = self.conv4(x)
        x = F.relu(self.bn4(x))
        x = self.pool4(x)
        x = F.avg_pool1d(x, x.shape[-1])
        x = x.permute(0, 2, 1)
        x = self.fc1(x)
        return F.log_softmax(x, dim=2)

def m5():
    torch.manual_seed(0)
    return _randomize_bn(M5())


# --- TC-ResNet8 (Choi et al. 2019: MFCC coefficients as channels, temporal 1-D convs) ---

class TCResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 9, stride, 4, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 9, 1, 4, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm1d(cout), nn.ReLU())
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + sc)

class TCResNet8(nn.Module):
    def __init__(self, n_mfcc=40, n_classes=12, k=1.5):
        super().__init__()
        ch = [int(c * k) for c in (16, 24, 32, 48)]
        self.conv = nn.Conv1d(n_mfcc, ch[0], 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(TCResBlock(ch[0], ch[1], 2), TCResBlock(ch[1], ch[2], 2),
                                    TCResBlock(ch[2], ch[3], 2))
        self.fc = nn.Linear(ch[3], n_classes)
    def forward(self, x):                     # (B, 1, n_mfcc, T) as a spectrogram image
        x = x.squeeze(1)                      # (B, n_mfcc, T): coefficients are channels
        x = self.blocks(self.conv(x))
        x = F.adaptive_avg_pool1d(x, 1).squeeze(-1)
        return self.fc(x)

def tcresnet():
    torch.manual_seed(0)
    return _randomize_bn(TCResNet8())


NETWORKS = (
    Network("conformer", "a Conformer encoder (macaron FF, nn.MultiheadAttention, GLU + "
            "depthwise Conv1d + BatchNorm1d module) over (B, 1, 40, 40) log-mels", "conformer",
            floats(32, 1, 40, 40)),
    Network("m5", "torchaudio tutorial's M5 keyword spotter (Conv1d k=80 s=16 on 8000 "
            "samples, MaxPool1d, avg_pool1d, log_softmax)", "m5", floats(16, 1, 8000)),
    Network("tcresnet", "TC-ResNet8 keyword spotter (MFCCs as Conv1d channels, k=9 residual "
            "blocks)", "tcresnet", floats(32, 1, 40, 101)),
)
