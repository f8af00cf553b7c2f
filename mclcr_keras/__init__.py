"""MC-LCR face forgery detection in Keras 3 / TensorFlow.

Wang, Jiang, Jin, Li, Cui. "MC-LCR: Multi-modal contrastive classification by locally correlated
representations for effective face forgery detection." Knowledge-Based Systems, 2022
(arXiv:2110.03290).
"""

__version__ = "0.1.0"
