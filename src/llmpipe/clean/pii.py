"""PII scrubbing: e-mail addresses, IP addresses and phone numbers become placeholders.

Patterns favour precision: a phone number needs a leading + or a separator pattern of real numbers
(or a Chinese mobile's 1[3-9] and 11 digits), so years, prices and version numbers stay.
"""

import ipaddress
import re

# Boundaries are ASCII-only: Chinese characters count as \w, and "请拨打13800138000联系" must match.
EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])"
)
IPV4 = re.compile(r"(?<![A-Za-z0-9_.])(?:\d{1,3}\.){3}\d{1,3}(?![A-Za-z0-9_]|\.\d)")
IPV6 = re.compile(
    r"(?<![A-Za-z0-9_:])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)(?=[0-9A-Fa-f:]*\d)[0-9A-Fa-f:]{3,39}(?![A-Za-z0-9_:])"
)
PHONE = re.compile(
    r"(?<![A-Za-z0-9_+])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,3}"  # +1 555 123 4567, +86 138 0013 8000
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|0\d{2,3}-\d{7,8}"  # a Chinese landline: 010-12345678
    r"|1[3-9]\d{9}"  # a Chinese mobile number
    r")(?![A-Za-z0-9_])"
)
ANY_DIGIT = re.compile(r"\d")  # the digits the patterns' \d match (any Unicode decimal digit)
PLACEHOLDERS = {"emails": "<EMAIL>", "ip_addresses": "<IP>", "phone_numbers": "<PHONE>"}


def is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def scrub(text: str, kinds: dict[str, bool]) -> tuple[str, dict[str, int]]:
    """The text with each enabled kind of PII replaced by its placeholder, and how many of each."""
    counts = {}
    # each pattern needs an "@" or a digit: most documents have neither, and `in` is cheaper than a scan
    if "@" not in text and not ANY_DIGIT.search(text):
        return text, counts
    if kinds.get("emails") and "@" in text:
        text, counts["emails"] = EMAIL.subn(PLACEHOLDERS["emails"], text)
    if kinds.get("ip_addresses"):
        found = 0

        def replace_ip(match: re.Match) -> str:
            nonlocal found
            if not is_ip(match.group()):
                return match.group()  # 999.1.1.1 or 12:30:45: shaped like an address, but not one
            found += 1
            return PLACEHOLDERS["ip_addresses"]

        text = IPV6.sub(replace_ip, IPV4.sub(replace_ip, text))
        counts["ip_addresses"] = found
    if kinds.get("phone_numbers"):
        text, counts["phone_numbers"] = PHONE.subn(PLACEHOLDERS["phone_numbers"], text)
    return text, {k: v for k, v in counts.items() if v}
