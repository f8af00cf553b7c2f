"""The end-to-end demo: its sizes (`settings`), the dataset it makes (`data`, self-blended fakes
from `sbi`), its stages (`stages`) and how they run (`runner`). ``python -m mclcr_keras.demo``."""
