import warnings

from django.apps import AppConfig
from django.conf import settings


class FeedConfig(AppConfig):
    name = "feed"
    verbose_name = "Photo feed"

    def ready(self) -> None:
        from PIL import Image

        # Pillow's own decompression-bomb guard, at our limit, for every image opened in this
        # process (feed.forms checks the declared size first anyway). Pillow only warns between
        # the limit and twice it; as an error the warning cannot pass as a mere log line. Set once
        # at start-up, process-wide: warnings.catch_warnings per request is not thread-safe.
        Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS
        warnings.simplefilter("error", Image.DecompressionBombWarning)
