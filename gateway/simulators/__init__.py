"""What every courier simulator shares (``engine``). Each provider's dialect lives in its
courier's folder (``gateway/couriers/<name>/simulator.py``), named by the adapter's
``simulator`` attribute, which is how ``gateway up`` finds it."""
