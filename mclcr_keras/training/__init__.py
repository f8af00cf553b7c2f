"""Training: the run's options (`options.TrainConfig`), its folder (`run_dir`), callbacks, devices
(`distribute`), Keras workarounds (`keras_compat`) and the run itself (`loop.train`).

Example:

```python
from mclcr_keras.training.loop import train
from mclcr_keras.training.options import TrainConfig

outcome = train(TrainConfig(records="records/ffpp", out="runs/ffpp"))
```
"""
