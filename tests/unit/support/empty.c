/* Keeps the support library non-empty before any fake exists. */
typedef int troika_test_support_empty;
