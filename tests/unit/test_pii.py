from llmpipe.clean.pii import scrub

ALL = {"emails": True, "ip_addresses": True, "phone_numbers": True}


def test_emails_ips_and_phones_become_placeholders_and_are_counted():
    text, counts = scrub("Mail joe.bloggs+x@example.co.uk or call +1 555 123 4567 from 192.168.1.20.", ALL)
    assert text == "Mail <EMAIL> or call <PHONE> from <IP>."
    assert counts == {"emails": 1, "ip_addresses": 1, "phone_numbers": 1}


def test_chinese_text_has_no_spaces_around_pii():
    text, counts = scrub("请拨打13800138000或010-12345678联系joe@example.com谢谢", ALL)
    assert text == "请拨打<PHONE>或<PHONE>联系<EMAIL>谢谢"
    assert counts == {"emails": 1, "phone_numbers": 2}


def test_ipv6_and_us_formats():
    assert scrub("ping 2001:db8::1 and fe80::1ff:fe23:4567:890a", ALL)[0] == "ping <IP> and <IP>"
    assert scrub("(555) 123-4567, 555-123-4567", ALL)[0] == "<PHONE>, <PHONE>"


def test_numbers_that_are_not_pii_are_kept():
    for text in ("version 1.2.3 released in 2024", "costs $19.99 at 12:30:45", "999.1.1.1 is no address",
                 "std::vector and a::b", "186,282 miles per second", "Table 1.9. 时间戳类型列表"):  # fmt: skip
        assert scrub(text, ALL) == (text, {})


def test_each_kind_can_be_switched_off():
    text = "joe@example.com 10.0.0.1 +1 555 123 4567"
    assert (
        scrub(text, {"emails": False, "ip_addresses": True, "phone_numbers": False})[0]
        == "joe@example.com <IP> +1 555 123 4567"
    )
