"""Check digits of the three identifiers (identifiers.md).

The XSD already guarantees the number of digits; these functions are total
anyway (a wrong length or a non-digit is simply invalid) so they can be used
on their own, e.g. by the offline validator.
"""

from __future__ import annotations


def _digits(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isdigit()


def inss_is_valid(inss: str) -> bool:
    """INSS: YYMMDD NNN CC; check 97 - (B mod 97), B prefixed by 2 when born in 2000+."""
    if not _digits(inss, 11):
        return False
    month, day = int(inss[2:4]), int(inss[4:6])
    # National register 00-12; BIS adds 20 (sex unknown) or 40 (sex known).
    if not (0 <= month <= 12 or 20 <= month <= 32 or 40 <= month <= 52):
        return False
    if not 0 <= day <= 31:
        return False
    base, check = int(inss[:9]), int(inss[9:])
    return check == 97 - (base % 97) or check == 97 - ((2_000_000_000 + base) % 97)


def enterprise_nbr_is_valid(number: str) -> bool:
    """Enterprise number: 10 digits, first 0 or 1, last 2 = 97 - (first 8 mod 97)."""
    if not _digits(number, 10) or number[0] not in "01":
        return False
    return int(number[8:]) == 97 - (int(number[:8]) % 97)


def noss_nbr_is_valid(number: str) -> bool:
    """NOSS registration number: 7-digit base, check = 96 - ((base * 100) mod 97)."""
    if not _digits(number, 9):
        return False
    return int(number[7:]) == 96 - ((int(number[:7]) * 100) % 97)
