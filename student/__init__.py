"""The character BiLSTM-CRF student: features, network, distillation losses, training."""
