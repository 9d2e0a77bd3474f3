"""The test vectors of identifiers.md, and nothing else: they are the contract."""

import pytest

from declarations.domain.identifiers import enterprise_nbr_is_valid, inss_is_valid, noss_nbr_is_valid


@pytest.mark.parametrize("inss", ["85073100130", "92021402348", "05061214559", "00010100204", "85473101109"])
def test_valid_inss(inss):
    assert inss_is_valid(inss)


@pytest.mark.parametrize("inss", ["85073100131", "85133100172", "8507310013", "8507310013a"])
def test_invalid_inss(inss):
    assert not inss_is_valid(inss)


@pytest.mark.parametrize("number", ["0403179609", "0876920184", "1234567894"])
def test_valid_enterprise_nbr(number):
    assert enterprise_nbr_is_valid(number)


@pytest.mark.parametrize("number", ["0403179608", "2403179651"])
def test_invalid_enterprise_nbr(number):
    assert not enterprise_nbr_is_valid(number)


@pytest.mark.parametrize("number", ["123456749", "555123433", "009988768", "765432140", "199999934", "175110801"])
def test_valid_noss_nbr(number):
    assert noss_nbr_is_valid(number)


@pytest.mark.parametrize("number", ["123456748", "555123476"])
def test_invalid_noss_nbr(number):
    assert not noss_nbr_is_valid(number)
