"""Static reference data and behaviour parameters of the simulated shop.

Everything here is fixed (the product catalogue comes from a constant seed), so product ids and
prices are the same in every run and downstream dimension checks can rely on them.
"""
from __future__ import annotations

import random

# (value, weight) mixes
COUNTRIES = [("US", 34), ("GB", 12), ("DE", 11), ("FR", 8), ("CA", 6), ("NL", 5), ("ES", 5), ("IT", 5),
             ("AU", 4), ("SE", 3), ("BR", 3), ("IN", 2), ("PL", 2)]
DEVICES = [("mobile", 56), ("desktop", 35), ("tablet", 9)]
ACQUISITION_CHANNELS = [("organic_search", 30), ("paid_search", 20), ("social", 15), ("referral", 10),
                        ("email", 8), ("affiliate", 7), ("direct", 10)]
TIERS = [("free", 60), ("basic", 28), ("premium", 12)]
# utm_source of a session; None = direct traffic (no campaign)
UTM_SOURCES = [(None, 38), ("google", 27), ("facebook", 9), ("instagram", 7), ("newsletter", 8), ("bing", 4),
               ("tiktok", 4), ("affiliate", 3)]
PAYMENT_METHODS = [("card", 58), ("paypal", 22), ("apple_pay", 10), ("google_pay", 6), ("bank_transfer", 4)]
ORDER_STATUSES = [("completed", 930), ("cancelled", 40), ("refunded", 30)]
CURRENCY = "USD"  # one store currency: revenue sums across countries stay meaningful

CATEGORIES = ["electronics", "books", "home", "garden", "fashion", "beauty", "sports", "toys", "grocery", "music"]
SEARCH_TERMS = ["headphones", "running shoes", "coffee maker", "yoga mat", "lego", "kindle", "desk lamp",
                "backpack", "sunscreen", "board game", "garden hose", "vinyl", "phone case", "air fryer",
                "water bottle", "notebook", "rain jacket", "bluetooth speaker", "face cream", "tent"]
FIRST_NAMES = ["alex", "sam", "maria", "li", "noah", "emma", "omar", "yuki", "lena", "ivan", "sofia", "jon",
               "ana", "ravi", "chloe", "mateo", "nina", "paul", "zoe", "ahmed", "eva", "tom", "mia", "leo"]
LAST_NAMES = ["smith", "garcia", "muller", "chen", "rossi", "dubois", "kowalski", "silva", "jensen", "khan",
              "novak", "tanaka", "brown", "lopez", "martin", "wilson", "nguyen", "kim", "fischer", "moreau"]
EMAIL_DOMAINS = ["example.com", "mail.test", "inbox.example", "post.example.org", "webmail.test"]

# Daily and weekly seasonality of session starts (UTC), each averaging 1.0.
_HOURLY = [0.25, 0.18, 0.14, 0.12, 0.14, 0.22, 0.40, 0.65, 0.90, 1.05, 1.15, 1.25,
           1.35, 1.30, 1.22, 1.20, 1.25, 1.40, 1.60, 1.75, 1.70, 1.45, 1.00, 0.55]
HOURLY = [h * 24 / sum(_HOURLY) for h in _HOURLY]
_WEEKLY = [0.95, 0.93, 0.94, 0.97, 1.02, 1.13, 1.10]  # Monday .. Sunday
WEEKLY = [w * 7 / sum(_WEEKLY) for w in _WEEKLY]

# Funnel parameters (per step / per stage)
P_LOGIN = 0.30              # session starts with an explicit login
P_LOGOUT = 0.35             # a logged-in session ends with logout
MEAN_BROWSE_STEPS = 5.0     # page_view / search / product_view steps after landing
P_SEARCH = 0.16
P_CATEGORY = 0.22           # otherwise a product_view
P_ADD_TO_CART = 0.055       # per product_view
P_REMOVE_FROM_CART = 0.12   # per step while the cart is not empty
P_CHECKOUT_START = 0.55     # cart not empty at the end of browsing
P_CHECKOUT_SUCCESS = 0.72   # given checkout_start
MEAN_GAP_MS = 22_000        # think time between events of a session
N_PRODUCTS = 400


def _catalog() -> tuple[list[str], list[int], list[str], list[float]]:
    rng = random.Random(20240101)
    ids, prices, categories, weights = [], [], [], []
    for i in range(1, N_PRODUCTS + 1):
        ids.append(f"P{i:05d}")
        prices.append(max(199, int(round(rng.lognormvariate(8.0, 0.85) / 10)) * 10 - 1))  # cents, ends in 9
        categories.append(CATEGORIES[rng.randrange(len(CATEGORIES))])
        weights.append(1.0 / (i ** 0.8))  # Zipf-like popularity
    return ids, prices, categories, weights


PRODUCT_IDS, PRODUCT_PRICE_CENTS, PRODUCT_CATEGORY, PRODUCT_WEIGHTS = _catalog()
PRODUCT_URLS = [f"/product/{pid}" for pid in PRODUCT_IDS]
CATEGORY_URLS = [f"/category/{c}" for c in CATEGORIES]
SEARCH_URLS = [f"/search?q={t.replace(' ', '+')}" for t in SEARCH_TERMS]
LANDING_URLS = [("/", 55), ("/deals", 15), *[(u, 3) for u in CATEGORY_URLS]]
